"""Stories that need more than tracking moves: bAbI kinds 9, 10, 14, 17, 18, 19.

====  =======================  ====================================================
kind  bAbI task                question (answer; supporting statements)
====  =======================  ====================================================
9     simple-negation          Is Mary in the office? after "Mary is no longer in
                               the office." (yes/no; the last fact about her)
10    indefinite-knowledge     Is Fred in the park? after "Fred is either in the
                               school or the park." (yes/no/maybe; the same)
14    time-reasoning           Where was Julie before the school? ("yesterday",
                               "this morning", ... told out of order; the place of
                               the time before and of the one asked about)
17    positional-reasoning     Is the red square to the left of the triangle?
                               (yes/no from two placements; both)
18    size-reasoning           Does the box fit in the chest? / Is the chest bigger
                               than the box? (yes/no by transitivity; the chain)
19    path-finding             How do you go from the kitchen to the garden?
                               ("s,e"; the two steps, in path order)
====  =======================  ====================================================
"""

from __future__ import annotations

import random
from collections import deque

from textrnn.data.babi_story import MOVE_VERBS, Story
from textrnn.data.babi_worlds import PEOPLE, PLACES

# bAbI tasks 10 and 14 have their own people and places.
CITIZENS = ("Fred", "Mary", "Bill", "Julie")
TOWN = ("school", "park", "cinema", "office", "kitchen", "bedroom")
TIMES = ("yesterday", "this morning", "this afternoon", "this evening")  # in time order
SHAPES = ("triangle", "red square", "blue square", "pink rectangle", "red sphere",
          "yellow square")
# relation -> the step (dx, dy) from the second shape to the first
RELATIONS = {"above": (0, 1), "below": (0, -1), "to the left of": (-1, 0),
             "to the right of": (1, 0)}
CONTAINERS = ("box", "chest", "suitcase", "container", "chocolate")
ROOMS = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
# direction letter -> (word, step (dx, dy)); north is +y
DIRECTIONS = {"n": ("north", (0, 1)), "s": ("south", (0, -1)), "e": ("east", (1, 0)),
              "w": ("west", (-1, 0))}


def negation_story(rng: random.Random, questions: int) -> Story:
    """bAbI 9: people are in places, or no longer (not) in them; "Is X in the P?"."""
    story, fact = Story(), {}  # person -> (place, is there?, line id)
    for _ in range(min(questions, 5)):
        for _ in range(rng.randint(1, 3)):
            person = rng.choice(PEOPLE)
            known = fact.get(person)
            if known and known[1] and rng.random() < 0.4:
                phrase = rng.choice(("is no longer in", "is not in"))
                fact[person] = (known[0], False, story.say(f"{person} {phrase} the {known[0]}."))
                continue
            place = rng.choice([p for p in PLACES if not known or p != known[0]])
            verb = rng.choice(("is in", *MOVE_VERBS))
            fact[person] = (place, True, story.say(f"{person} {verb} the {place}."))
        person = rng.choice(list(fact))
        place, there, line_id = fact[person]
        if there and rng.random() < 0.5:
            place = rng.choice([p for p in PLACES if p != place])
            there = False
        story.ask(f"Is {person} in the {place}?", "yes" if there else "no", [line_id])
    return story


def indefinite_story(rng: random.Random, questions: int) -> Story:
    """bAbI 10: people are in a place, or "either in the A or the B"; yes/no/maybe."""
    story, fact = Story(), {}  # person -> (possible places, line id)
    for _ in range(min(questions, 5)):
        for _ in range(rng.randint(1, 3)):
            person = rng.choice(CITIZENS)
            if rng.random() < 0.4:
                a, b = rng.sample(TOWN, 2)
                fact[person] = ((a, b), story.say(f"{person} is either in the {a} or the {b}."))
            else:
                place = rng.choice(TOWN)
                verb = rng.choice(("is in", *MOVE_VERBS))
                fact[person] = ((place,), story.say(f"{person} {verb} the {place}."))
        person = rng.choice(list(fact))
        places, line_id = fact[person]
        place = rng.choice(places) if rng.random() < 0.5 else rng.choice(
            [p for p in TOWN if p not in places])
        answer = "no" if place not in places else "yes" if len(places) == 1 else "maybe"
        story.ask(f"Is {person} in the {place}?", answer, [line_id])
    return story


def time_story(rng: random.Random, questions: int) -> Story:
    """bAbI 14: where people went yesterday, this morning, ..., told out of order;
    "Where was X before the P?" is asked once both moments have been told."""
    story = Story()
    timeline = {}  # person -> [place at each time, from yesterday]
    for person in rng.sample(CITIZENS, rng.randint(2, 4)):
        # Distinct places, so that "before the school" names one moment of the day.
        timeline[person] = rng.sample(TOWN, rng.randint(2, len(TIMES)))
    events = [(person, t) for person, places in timeline.items() for t in range(len(places))]
    rng.shuffle(events)
    told: dict[tuple[str, int], int] = {}  # (person, time) -> line id
    for person, t in events:
        place, when = timeline[person][t], TIMES[t]
        verb = rng.choice(MOVE_VERBS)
        text = (f"{when[0].upper()}{when[1:]} {person} {verb} the {place}." if rng.random() < 0.5
                else f"{person} {verb} the {place} {when}.")
        told[person, t] = story.say(text)
        # Askable once a moment and the one before it have both been told.
        askable = [(p, s) for (p, s) in told if s > 0 and (p, s - 1) in told]
        last = len(told) == len(events)
        if askable and story.questions < questions and (rng.random() < 0.5 or
                                                        last and not story.questions):
            p, s = rng.choice(askable)
            story.ask(f"Where was {p} before the {timeline[p][s]}?", timeline[p][s - 1],
                      sorted([told[p, s], told[p, s - 1]]))
    return story


def positional_story(rng: random.Random, questions: int) -> Story:
    """bAbI 17: two placements of three shapes sharing one; questions relate the other
    two, which needs both."""
    story = Story(space_before_tab=False)
    while True:
        a, b, c = rng.sample(SHAPES, 3)
        rel1, rel2 = rng.choice(list(RELATIONS)), rng.choice(list(RELATIONS))
        pos = {b: (0, 0)}
        pos[a] = _step(pos[b], RELATIONS[rel1])  # "The a is rel1 the b."
        # The second placement shares a: "The c is rel2 the a." or "The a is rel2 the c."
        if rng.random() < 0.5:
            pos[c], second = _step(pos[a], RELATIONS[rel2]), f"The {c} is {rel2} the {a}."
        else:
            pos[c], second = _step(pos[a], RELATIONS[rel2], -1), f"The {a} is {rel2} the {c}."
        if len(set(pos.values())) == 3:  # three shapes on three squares
            break
    story.say(f"The {a} is {rel1} the {b}.")
    story.say(second)
    for _ in range(min(questions, 8)):
        x, y = rng.sample((b, c), 2)
        true = [r for r in RELATIONS if _holds(pos[x], pos[y], r)]
        rel = rng.choice(true) if rng.random() < 0.5 else rng.choice(
            [r for r in RELATIONS if r not in true])
        story.ask(f"Is the {x} {rel} the {y}?", "yes" if rel in true else "no", [1, 2])
    return story


def _step(at: tuple[int, int], step: tuple[int, int], sign: int = 1) -> tuple[int, int]:
    return at[0] + sign * step[0], at[1] + sign * step[1]


def _holds(x: tuple[int, int], y: tuple[int, int], relation: str) -> bool:
    """Whether the shape at ``x`` is ``relation`` the one at ``y`` (strictly, on that axis)."""
    dx, dy = RELATIONS[relation]
    return (x[0] - y[0]) * dx > 0 if dx else (x[1] - y[1]) * dy > 0


def size_story(rng: random.Random, questions: int) -> Story:
    """bAbI 18: "The box fits inside the chest." / "The chest is bigger than the box.";
    questions follow by transitivity; the support is a shortest chain of facts."""
    story = Story(space_before_tab=False)
    order = rng.sample(CONTAINERS, len(CONTAINERS))  # smallest first
    facts: dict[tuple[str, str], int] = {}  # (smaller, bigger) -> line id
    while len(facts) < 4:
        i, j = sorted(rng.sample(range(len(order)), 2))
        small, big = order[i], order[j]
        if (small, big) in facts:
            continue
        text = (f"The {small} fits inside the {big}." if rng.random() < 0.5
                else f"The {big} is bigger than the {small}.")
        facts[small, big] = story.say(text)
    chains = {(s, b): chain for s in order for b in order
              if (chain := _chain(facts, s, b)) is not None and s != b}
    long = [pair for pair, chain in chains.items() if len(chain) > 1]
    for _ in range(min(questions, 5)):
        small, big = rng.choice(long if long and rng.random() < 0.7 else list(chains))
        ids = sorted(chains[small, big])
        if rng.random() < 0.5:
            x, y = (small, big) if rng.random() < 0.5 else (big, small)
            story.ask(f"Does the {x} fit in the {y}?", "yes" if x == small else "no", ids)
        else:
            x, y = (big, small) if rng.random() < 0.5 else (small, big)
            story.ask(f"Is the {x} bigger than the {y}?", "yes" if x == big else "no", ids)
    return story


def _chain(facts: dict[tuple[str, str], int], small: str, big: str) -> list[int] | None:
    """The line ids of a shortest chain ``small < ... < big`` of facts (breadth first, facts
    in the order told), or None."""
    came_from: dict[str, tuple[str, int] | None] = {small: None}
    queue = deque([small])
    while queue:
        at = queue.popleft()
        if at == big:
            ids, node = [], at
            while came_from[node] is not None:
                node, line_id = came_from[node]
                ids.append(line_id)
            return ids[::-1]
        for (s, b), line_id in facts.items():
            if s == at and b not in came_from:
                came_from[b] = (at, line_id)
                queue.append(b)
    return None


def path_story(rng: random.Random, questions: int) -> Story:
    """bAbI 19: six rooms on a grid joined by five told adjacencies; "How do you go from
    the X to the Y?" for rooms two steps apart ("s,e")."""
    story = Story(space_before_tab=False)
    rooms = rng.sample(ROOMS, len(ROOMS))
    at = {rooms[0]: (0, 0)}
    edges: list[tuple[str, str, str]] = []  # (room, direction letter, the room that way)
    for room in rooms[1:]:
        while True:
            base, letter = rng.choice(list(at)), rng.choice(list(DIRECTIONS))
            spot = _step(at[base], DIRECTIONS[letter][1])
            if spot not in at.values():
                break
        at[room] = spot
        edges.append((base, letter, room))
    rng.shuffle(edges)
    step_ids: dict[tuple[str, str], tuple[str, int]] = {}  # (from, to) -> (letter, line id)
    opposite = {"n": "s", "s": "n", "e": "w", "w": "e"}
    for base, letter, room in edges:
        if rng.random() < 0.5:  # "The room is north of the base." or the other way round
            line_id = story.say(f"The {room} is {DIRECTIONS[letter][0]} of the {base}.")
        else:
            line_id = story.say(f"The {base} is {DIRECTIONS[opposite[letter]][0]} of the {room}.")
        step_ids[base, room] = (letter, line_id)
        step_ids[room, base] = (opposite[letter], line_id)
    two_steps = [(x, m, y) for (x, m) in step_ids for (m2, y) in step_ids if m2 == m and y != x]
    x, m, y = rng.choice(two_steps)
    (first, id1), (second, id2) = step_ids[x, m], step_ids[m, y]
    story.ask(f"How do you go from the {x} to the {y}?", f"{first},{second}", [id1, id2])
    return story
