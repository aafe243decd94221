"""People who move, pick things up, put them down and hand them over: bAbI kinds 1-3, 5-8.

One simulated world (:class:`World`) tells the story and answers the questions of
seven kinds, each asked the way its bAbI task asks it:

====  ===========================  =================================================
kind  bAbI task                    question (answer; supporting statements)
====  ===========================  =================================================
1     single-supporting-fact       Where is Mary? (her place; her last move)
2     two-supporting-facts         Where is the milk? (its place; who got or dropped
                                   it and that person's last move before then)
3     three-supporting-facts       Where was the milk before the office? (the place
                                   before; the get and the moves that carried it)
5     three-arg-relations          Who gave the milk to Fred? / Who received the milk?
                                   / What did Bill give to Fred? / Who did Bill give
                                   the milk to? / Who gave the milk? (the last
                                   matching give)
6     yes-no-questions             Is Mary in the office? (yes/no; her last move)
7     counting                     How many objects is Mary carrying? (none..three;
                                   her gets and drops)
8     lists-sets                   What is Mary carrying? (milk,apple / nothing; same)
====  ===========================  =================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from textrnn.data.babi_story import MOVE_VERBS, NUMBERS, Story

PEOPLE = ("Mary", "John", "Daniel", "Sandra")
GIVERS = ("Bill", "Fred", "Jeff", "Mary")  # the people of bAbI task 5
PLACES = ("bathroom", "hallway", "garden", "office", "bedroom", "kitchen")
OBJECTS = ("football", "apple", "milk")
GET_VERBS = ("got", "picked up", "grabbed", "took")
DROP_VERBS = ("dropped", "discarded", "put down", "left")
GIVE_VERBS = ("gave", "handed", "passed")


@dataclass
class Kind:
    """How one kind's stories are told: who acts, how often each action is drawn
    (a drop or give is drawn only when possible), statements between questions."""

    people: tuple[str, ...]
    weights: dict[str, int]  # action -> weight among the possible ones
    gap: tuple[int, int]  # statements before each question, at least
    questions: int = 5  # per story, as in bAbI


KINDS: dict[int, Kind] = {
    1: Kind(PEOPLE, {"move": 1}, (1, 2)),
    # A drop weighs more than a get, so that "none"/"nothing" answers are common.
    2: Kind(PEOPLE, {"move": 3, "get": 1, "drop": 2}, (1, 3)),
    3: Kind(PEOPLE, {"move": 4, "get": 2, "drop": 1}, (2, 4)),  # things travel far
    5: Kind(GIVERS, {"move": 2, "get": 2, "drop": 1, "give": 4}, (1, 3)),
    6: Kind(PEOPLE, {"move": 3, "get": 1, "drop": 2}, (1, 2)),
    7: Kind(PEOPLE, {"move": 3, "get": 1, "drop": 2}, (1, 3)),
    8: Kind(PEOPLE, {"move": 3, "get": 1, "drop": 2}, (1, 3)),
}


@dataclass
class World:
    """Where everyone and everything is, with the line ids that justify it."""

    people: tuple[str, ...]
    place: dict[str, str] = field(default_factory=dict)  # person -> place, once they moved
    last_move: dict[str, int] = field(default_factory=dict)  # person -> id of that move
    holding: dict[str, list[str]] = field(default_factory=dict)  # person -> objects, in order
    object_events: dict[str, list[int]] = field(default_factory=dict)  # person -> get/drop ids
    got: dict[str, int] = field(default_factory=dict)  # held object -> id of its get or give
    lying: dict[str, tuple[str, list[int]]] = field(default_factory=dict)  # object -> place, ids
    # object -> [(place, ids that put it there)], a new entry whenever it changes place
    history: dict[str, list[tuple[str, list[int]]]] = field(default_factory=dict)
    gives: list[tuple[str, str, str, int]] = field(default_factory=list)  # giver, obj, to, id

    def __post_init__(self) -> None:
        for person in self.people:
            self.holding.setdefault(person, [])
            self.object_events.setdefault(person, [])

    def holder(self, obj: str) -> str | None:
        return next((p for p, held in self.holding.items() if obj in held), None)

    def options(self, person: str) -> dict[str, list]:
        """The actions ``person`` can take now, each with its possible arguments."""
        here = self.place.get(person)
        options: dict[str, list] = {"move": [p for p in PLACES if p != here]}
        if here is not None:
            # An object not yet mentioned can be anywhere; a dropped one can only be
            # picked up where it lies.
            options["get"] = [o for o in OBJECTS if self.holder(o) is None
                              and self.lying.get(o, (here,))[0] == here]
        options["drop"] = list(self.holding[person]) if here is not None else []
        options["give"] = [(o, q) for o in self.holding[person] for q in self.people
                           if q != person]
        return options

    def act(self, rng: random.Random, story: Story, weights: dict[str, int]) -> None:
        """Draw a possible action of a random person, tell it, and update the world."""
        person = rng.choice(self.people)
        options = self.options(person)
        actions = [a for a in weights if options.get(a)]
        action = rng.choices(actions, weights=[weights[a] for a in actions])[0]
        arg = rng.choice(options[action])
        if action == "move":
            line_id = story.say(f"{person} {rng.choice(MOVE_VERBS)} the {arg}.")
            self.place[person], self.last_move[person] = arg, line_id
            for obj in self.holding[person]:  # what they carry goes with them
                self.history[obj].append((arg, [self.got[obj], line_id]))
        elif action == "get":
            line_id = story.say(f"{person} {rng.choice(GET_VERBS)} the {arg} there.")
            self.holding[person].append(arg)
            self.object_events[person].append(line_id)
            self.got[arg] = line_id
            self.lying.pop(arg, None)
            places = self.history.setdefault(arg, [])
            if not places or places[-1][0] != self.place[person]:
                places.append((self.place[person], [self.last_move[person], line_id]))
        elif action == "drop":
            there = " there" if rng.random() < 0.2 else ""  # bAbI says both
            line_id = story.say(f"{person} {rng.choice(DROP_VERBS)} the {arg}{there}.")
            self.holding[person].remove(arg)
            self.object_events[person].append(line_id)
            del self.got[arg]
            self.lying[arg] = (self.place[person], [self.last_move[person], line_id])
        else:
            obj, receiver = arg
            line_id = story.say(f"{person} {rng.choice(GIVE_VERBS)} the {obj} to {receiver}.")
            self.holding[person].remove(obj)
            self.holding[receiver].append(obj)
            self.got[obj] = line_id
            self.gives.append((person, obj, receiver, line_id))

    # Each asker returns (question, answer, support), or None if it cannot be asked now.

    def where_person(self, rng: random.Random) -> tuple[str, str, list[int]] | None:
        person = self._someone_placed(rng)
        if person is None:
            return None
        return f"Where is {person}?", self.place[person], [self.last_move[person]]

    def yes_no(self, rng: random.Random) -> tuple[str, str, list[int]] | None:
        person = self._someone_placed(rng)
        if person is None:
            return None
        here = self.place[person]
        place = here if rng.random() < 0.5 else rng.choice([p for p in PLACES if p != here])
        return (f"Is {person} in the {place}?", "yes" if place == here else "no",
                [self.last_move[person]])

    def _someone_placed(self, rng: random.Random) -> str | None:
        people = [p for p in self.people if p in self.place]
        return rng.choice(people) if people else None

    def where_object(self, rng: random.Random) -> tuple[str, str, list[int]] | None:
        seen = [o for o in OBJECTS if o in self.history]
        if not seen:
            return None
        obj = rng.choice(seen)
        holder = self.holder(obj)
        if holder is not None:
            return (f"Where is the {obj}?", self.place[holder],
                    sorted({self.got[obj], self.last_move[holder]}))
        place, ids = self.lying[obj]
        return f"Where is the {obj}?", place, sorted(set(ids))

    def where_before(self, rng: random.Random) -> tuple[str, str, list[int]] | None:
        # "Before the office" must name one moment: ask only about places an object
        # has been in once.
        options = []
        for obj, places in self.history.items():
            names = [p for p, _ in places]
            options += [(obj, j) for j in range(1, len(places)) if names.count(names[j]) == 1]
        if not options:
            return None
        obj, j = rng.choice(options)
        (before, ids_before), (place, ids) = self.history[obj][j - 1], self.history[obj][j]
        return (f"Where was the {obj} before the {place}?", before,
                sorted(set(ids_before + ids)))

    def count(self, rng: random.Random) -> tuple[str, str, list[int]] | None:
        person = self._asked_about_objects(rng)
        if person is None:
            return None
        return (f"How many objects is {person} carrying?", NUMBERS[len(self.holding[person])],
                list(self.object_events[person]))

    def carrying(self, rng: random.Random) -> tuple[str, str, list[int]] | None:
        person = self._asked_about_objects(rng)
        if person is None:
            return None
        return (f"What is {person} carrying?", ",".join(self.holding[person]) or "nothing",
                list(self.object_events[person]))

    def _asked_about_objects(self, rng: random.Random) -> str | None:
        people = [p for p in self.people if self.object_events[p]]  # bAbI asks after a fact
        return rng.choice(people) if people else None

    def give(self, rng: random.Random) -> tuple[str, str, list[int]] | None:
        if not self.gives:
            return None
        giver, obj, receiver, _ = rng.choice(self.gives[-3:])  # mostly about recent gives
        forms = [
            (f"Who gave the {obj} to {receiver}?", lambda g: g[1] == obj and g[2] == receiver, 0),
            (f"Who received the {obj}?", lambda g: g[1] == obj, 2),
            (f"What did {giver} give to {receiver}?", lambda g: g[0] == giver and g[2] == receiver,
             1),
            (f"Who did {giver} give the {obj} to?", lambda g: g[0] == giver and g[1] == obj, 2),
            (f"Who gave the {obj}?", lambda g: g[1] == obj, 0),
        ]
        question, matches, part = rng.choice(forms)
        last = [g for g in self.gives if matches(g)][-1]  # the answer is the latest such give
        return question, last[part], [last[3]]


_ASKERS = {1: World.where_person, 2: World.where_object, 3: World.where_before,
           5: World.give, 6: World.yes_no, 7: World.count, 8: World.carrying}


def world_story(task: int, rng: random.Random, questions: int) -> Story:
    """One story of bAbI kind ``task`` (a key of :data:`KINDS`) with at most ``questions``
    questions: a few statements, then a question, until the questions are asked."""
    kind, story = KINDS[task], Story()
    world = World(kind.people)
    ask = _ASKERS[task]
    for _ in range(min(questions, kind.questions)):
        told, wanted = 0, rng.randint(*kind.gap)
        while True:
            if told >= wanted and (asked := ask(world, rng)) is not None:
                break
            world.act(rng, story, kind.weights)
            told += 1
        story.ask(*asked)
    return story
