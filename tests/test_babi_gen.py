"""Generated bAbI-style stories: deterministic, parseable, and answered correctly.

The answers and supporting ids are checked by a second, independent simulation
per kind that reads the generated sentences back as text, so a bug in a
generator's world model cannot hide behind the same bug in the check.
"""

from __future__ import annotations

import collections
import re
from collections import deque

import pytest
from babi_paths import real_babi_dir

from textrnn.data.babi import answer_tokens, find_task_files, parse_babi, read_babi, task_files
from textrnn.data.babi_gen import (
    KINDS,
    TRAIN_QUESTIONS,
    file_name,
    generate_stories,
    write_generated,
)

VERB = r"(?:moved to|went to|journeyed to|travelled to|went back to)"
MOVE = re.compile(rf"([A-Z]\w+) {VERB} the (\w+)\.")
GET = re.compile(r"(\w+) (?:got|picked up|grabbed|took) the (\w+) there\.")
DROP = re.compile(r"(\w+) (?:dropped|discarded|put down|left) the (\w+)(?: there)?\.")
GIVE = re.compile(r"(\w+) (?:gave|handed|passed) the (\w+) to (\w+)\.")
NUMBERS = ["none", "one", "two", "three"]
TIMES = ["yesterday", "this morning", "this afternoon", "this evening"]
STEP = {"above": (0, 1), "below": (0, -1), "to the left of": (-1, 0), "to the right of": (1, 0),
        "north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}
LETTER = {(0, 1): "n", (0, -1): "s", (1, 0): "e", (-1, 0): "w"}


def stories(lines):
    """Split lines into stories of (id, statement text) and (id, question, answer, support)."""
    story = []
    for line in lines:
        line_id, text = line.split(" ", 1)
        if int(line_id) == 1 and story:
            yield story
            story = []
        if "\t" in text:
            question, answer, support = text.split("\t")
            support_ids = [int(i) for i in support.split()]
            story.append((int(line_id), question.rstrip(), answer, support_ids))
        else:
            story.append((int(line_id), text))
    if story:
        yield story


class Movers:
    """Replays kinds 1-3 and 5-8 from the text of the statements."""

    def __init__(self):
        self.place, self.last_move, self.events = {}, {}, collections.defaultdict(list)
        self.holder, self.got, self.lying = {}, {}, {}  # object -> person / id / (place, ids)
        self.trail = collections.defaultdict(list)  # object -> [(place, ids)]
        self.gives = []

    def tell(self, line_id, text):
        if m := MOVE.fullmatch(text):
            person, where = m.groups()
            assert self.place.get(person) != where, text  # a move goes somewhere new
            self.place[person], self.last_move[person] = where, line_id
            for obj, holder in self.holder.items():
                if holder == person:
                    self.trail[obj].append((where, {self.got[obj], line_id}))
        elif m := GET.fullmatch(text):
            person, obj = m.groups()
            assert person in self.place and obj not in self.holder, text
            assert self.lying.get(obj, (self.place[person],))[0] == self.place[person], text
            self.holder[obj], self.got[obj] = person, line_id
            self.lying.pop(obj, None)
            self.events[person].append(line_id)
            if not self.trail[obj] or self.trail[obj][-1][0] != self.place[person]:
                self.trail[obj].append((self.place[person], {self.last_move[person], line_id}))
        elif m := DROP.fullmatch(text):
            person, obj = m.groups()
            assert self.holder.pop(obj) == person, text
            self.lying[obj] = (self.place[person], {self.last_move[person], line_id})
            self.events[person].append(line_id)
        elif m := GIVE.fullmatch(text):
            giver, obj, receiver = m.groups()
            assert self.holder[obj] == giver != receiver, text
            self.holder[obj], self.got[obj] = receiver, line_id
            self.gives.append((giver, obj, receiver, line_id))
        else:
            raise AssertionError(f"unexpected statement {text!r}")

    def answer(self, question):
        """(expected answer, expected support) of a question, from the replayed text."""
        if m := re.fullmatch(r"Where is ([A-Z]\w+)\?", question):
            return self.place[m[1]], [self.last_move[m[1]]]
        if m := re.fullmatch(r"Is ([A-Z]\w+) in the (\w+)\?", question):
            return ("yes" if self.place[m[1]] == m[2] else "no"), [self.last_move[m[1]]]
        if m := re.fullmatch(r"Where is the (\w+)\?", question):
            if m[1] in self.holder:
                person = self.holder[m[1]]
                return self.place[person], sorted({self.got[m[1]], self.last_move[person]})
            place, ids = self.lying[m[1]]
            return place, sorted(ids)
        if m := re.fullmatch(r"Where was the (\w+) before the (\w+)\?", question):
            places = [p for p, _ in self.trail[m[1]]]
            assert places.count(m[2]) == 1, question  # "before the office" names one moment
            j = places.index(m[2])
            assert j > 0, question
            return places[j - 1], sorted(self.trail[m[1]][j - 1][1] | self.trail[m[1]][j][1])
        if m := re.fullmatch(r"How many objects is (\w+) carrying\?", question):
            held = [o for o, p in self.holder.items() if p == m[1]]
            return NUMBERS[len(held)], self.events[m[1]]
        if m := re.fullmatch(r"What is (\w+) carrying\?", question):
            held = sorted(o for o, p in self.holder.items() if p == m[1])
            return held or ["nothing"], self.events[m[1]]  # a list: compared as a set
        return self.answer_give(question)

    def answer_give(self, question):
        forms = [(r"Who gave the (\w+) to (\w+)\?", lambda g, a, b: (g[1], g[2]) == (a, b), 0),
                 (r"Who received the (\w+)\?", lambda g, a: g[1] == a, 2),
                 (r"What did (\w+) give to (\w+)\?", lambda g, a, b: (g[0], g[2]) == (a, b), 1),
                 (r"Who did (\w+) give the (\w+) to\?", lambda g, a, b: (g[0], g[1]) == (a, b), 2),
                 (r"Who gave the (\w+)\?", lambda g, a: g[1] == a, 0)]
        for pattern, matches, part in forms:
            if m := re.fullmatch(pattern, question):
                last = [g for g in self.gives if matches(g, *m.groups())][-1]
                return last[part], [last[3]]
        raise AssertionError(f"unexpected question {question!r}")


def check_movers(story):
    world = Movers()
    for item in story:
        if len(item) == 2:
            world.tell(*item)
            continue
        _, question, answer, support = item
        expected, expected_support = world.answer(question)
        got = sorted(answer_tokens(answer)) if isinstance(expected, list) else answer
        assert (got, support) == (expected, expected_support), item


def check_located(story, task):
    """Kinds 9 and 10: the last fact about a person decides yes / no / maybe."""
    fact = {}
    for item in story:
        if len(item) == 2:
            line_id, text = item
            if m := MOVE.fullmatch(text) or re.fullmatch(r"(\w+) is in the (\w+)\.", text):
                fact[m[1]] = ({m[2]}, True, line_id)
            elif m := re.fullmatch(r"(\w+) is (?:no longer|not) in the (\w+)\.", text):
                assert task == 9, text
                fact[m[1]] = ({m[2]}, False, line_id)
            elif m := re.fullmatch(r"(\w+) is either in the (\w+) or the (\w+)\.", text):
                assert task == 10 and m[2] != m[3], text
                fact[m[1]] = ({m[2], m[3]}, True, line_id)
            else:
                raise AssertionError(f"unexpected statement {text!r}")
            continue
        _, question, answer, support = item
        person, place = re.fullmatch(r"Is (\w+) in the (\w+)\?", question).groups()
        places, positive, line_id = fact[person]
        if not positive:
            assert place in places, item  # "not in the office" says nothing of the garden
            expected = "no"
        else:
            expected = "no" if place not in places else "yes" if len(places) == 1 else "maybe"
        assert (answer, support) == (expected, [line_id]), item


def check_time(story):
    when = "|".join(TIMES)
    capitalised = "|".join(t[0].upper() + t[1:] for t in TIMES)
    first = re.compile(rf"({capitalised}) (\w+) {VERB} the (\w+)\.")
    last = re.compile(rf"(\w+) {VERB} the (\w+) ({when})\.")
    seen = {}  # (person, time) -> (place, id)
    for item in story:
        if len(item) == 2:
            line_id, text = item
            if m := first.fullmatch(text):
                time, person, place = m.groups()
            else:
                person, place, time = last.fullmatch(text).groups()
            time = TIMES.index(time.lower())
            assert (person, time) not in seen, text
            seen[person, time] = (place, line_id)
            continue
        _, question, answer, support = item
        person, place = re.fullmatch(r"Where was (\w+) before the (\w+)\?", question).groups()
        times = [t for (p, t), (where, _) in seen.items() if p == person and where == place]
        assert len(times) == 1, item
        earlier = [t for (p, t) in seen if p == person and t < times[0]]
        before = max(earlier)
        assert before == times[0] - 1, item  # the moment just before has been told
        expected = sorted([seen[person, before][1], seen[person, times[0]][1]])
        assert (answer, support) == (seen[person, before][0], expected), item


def check_positions(story):
    facts = []
    for item in story:
        if len(item) == 2:
            m = re.fullmatch(r"The (.+?) is (above|below|to the left of|to the right of) "
                             r"the (.+)\.", item[1])
            facts.append((m[1], STEP[m[2]], m[3]))
            continue
        _, question, answer, support = item
        pos = {facts[0][2]: (0, 0)}
        while len(pos) < 3:  # place every shape from the facts, whichever way they are told
            for a, (dx, dy), b in facts:
                if b in pos and a not in pos:
                    pos[a] = (pos[b][0] + dx, pos[b][1] + dy)
                elif a in pos and b not in pos:
                    pos[b] = (pos[a][0] - dx, pos[a][1] - dy)
        m = re.fullmatch(r"Is the (.+?) (above|below|to the left of|to the right of) the (.+)\?",
                         question)
        (dx, dy), x, y = STEP[m[2]], pos[m[1]], pos[m[3]]
        holds = (x[0] - y[0]) * dx > 0 if dx else (x[1] - y[1]) * dy > 0
        assert m[1] != m[3] and len(set(pos.values())) == 3, item
        assert (answer, support) == ("yes" if holds else "no", [1, 2]), item


def check_sizes(story):
    smaller = {}  # (small, big) -> id
    for item in story:
        if len(item) == 2:
            line_id, text = item
            if m := re.fullmatch(r"The (\w+) fits inside the (\w+)\.", text):
                smaller[m[1], m[2]] = line_id
            elif m := re.fullmatch(r"The (\w+) is bigger than the (\w+)\.", text):
                smaller[m[2], m[1]] = line_id
            else:
                raise AssertionError(text)
            continue
        _, question, answer, support = item
        if m := re.fullmatch(r"Does the (\w+) fit in the (\w+)\?", question):
            a, b, yes_if_a_smaller = m[1], m[2], True
        else:
            m = re.fullmatch(r"Is the (\w+) bigger than the (\w+)\?", question)
            a, b, yes_if_a_smaller = m[1], m[2], False
        a_smaller, b_smaller = distance(smaller, a, b), distance(smaller, b, a)
        assert (a_smaller is None) != (b_smaller is None), item  # derivable, one way only
        assert answer == ("yes" if (a_smaller is not None) == yes_if_a_smaller else "no"), item
        small, big = (a, b) if a_smaller is not None else (b, a)
        chain = {pair: i for pair, i in smaller.items() if i in support}
        # the support is a chain small < ... < big, and a shortest one
        assert len(support) == len(chain) == distance(smaller, small, big), item
        assert distance(chain, small, big) == len(support), item


def distance(edges, start, goal):
    """Fewest edges from start to goal in a directed graph {(a, b): id}, or None."""
    queue, seen = deque([(start, 0)]), {start}
    while queue:
        at, d = queue.popleft()
        if at == goal:
            return d
        for (a, b) in edges:
            if a == at and b not in seen:
                seen.add(b)
                queue.append((b, d + 1))
    return None


def check_paths(story):
    step = {}  # (from, to) -> ((dx, dy), id)
    for item in story:
        if len(item) == 2:
            line_id, text = item
            m = re.fullmatch(r"The (\w+) is (north|south|east|west) of the (\w+)\.", text)
            (dx, dy), a, b = STEP[m[2]], m[1], m[3]
            step[b, a], step[a, b] = ((dx, dy), line_id), ((-dx, -dy), line_id)
            continue
        _, question, answer, support = item
        x, y = re.fullmatch(r"How do you go from the (\w+) to the (\w+)\?", question).groups()
        routes = [(x, m, y) for (a, m) in step for (m2, b) in step
                  if a == x and m2 == m and b == y and m != y]
        assert len(routes) == 1 and (x, y) not in step, item  # one way, two steps
        _, m, _ = routes[0]
        (d1, id1), (d2, id2) = step[x, m], step[m, y]
        assert (answer, support) == (f"{LETTER[d1]},{LETTER[d2]}", [id1, id2]), item


CHECKS = {**dict.fromkeys((1, 2, 3, 5, 6, 7, 8), check_movers),
          9: lambda s: check_located(s, 9), 10: lambda s: check_located(s, 10),
          14: check_time, 17: check_positions, 18: check_sizes, 19: check_paths}


def test_thirteen_kinds_among_them_those_people_ask():
    assert set(CHECKS) == set(KINDS) and len(KINDS) >= 12
    assert {2, 3, 5, 6, 7, 8, 9, 10, 14, 17, 18, 19} <= set(KINDS)


@pytest.mark.parametrize("task", KINDS)
def test_answers_and_support_match_a_replay_of_the_text(task):
    lines = generate_stories(1500, task=task, seed=0)
    count = 0
    for story in stories(lines):
        CHECKS[task](story)
        count += sum(len(item) == 4 for item in story)
    assert count == 1500


@pytest.mark.parametrize("task", KINDS)
def test_answers_vary(task):
    answers = collections.Counter(e.answer for e in parse_babi(generate_stories(1000, task, 1)))
    # no answer is most of the kind's answers, so a model must read the story
    assert len(answers) >= 2 and answers.most_common(1)[0][1] < 750, answers


def test_answers_cover_what_bAbI_asks():
    answers = {e.answer for task in KINDS for e in parse_babi(generate_stories(500, task, 5))}
    assert {"yes", "no", "maybe", "none", "one", "two", "nothing"} <= answers
    assert any("," in a and len(a) > 3 for a in answers)  # lists of objects, as in task 8
    assert any(re.fullmatch(r"[nsew],[nsew]", a) for a in answers)  # paths, as in task 19


def test_deterministic_per_seed():
    assert generate_stories(50, 3, seed=3) == generate_stories(50, 3, seed=3)
    assert generate_stories(50, 3, seed=3) != generate_stories(50, 3, seed=4)


@pytest.mark.parametrize("num_questions", [0, 1, 7, 300])
@pytest.mark.parametrize("task", [1, 14, 19])
def test_exact_question_count_and_parses(num_questions, task):
    examples = parse_babi(generate_stories(num_questions, task, seed=1), path="generated")
    assert len(examples) == num_questions
    assert all(e.support for e in examples)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="task"):
        generate_stories(5, task=4)
    with pytest.raises(ValueError, match="num_questions"):
        generate_stories(-1)
    with pytest.raises(ValueError, match="kinds"):
        write_generated(tmp_path, kinds=[])
    with pytest.raises(ValueError, match="kinds"):
        write_generated(tmp_path, kinds=[1, 20])


@pytest.mark.parametrize("task", KINDS)
def test_vocabulary_is_real_babi_vocabulary(task):
    real = set()
    for e in read_babi(find_task_files(real_babi_dir() / "en", [task])[task]):
        real.update(w for s in [*e.story, e.question] for w in s)
        real.update(answer_tokens(e.answer.lower()))
    generated = set()
    for e in parse_babi(generate_stories(2000, task, seed=0)):
        generated.update(w for s in [*e.story, e.question] for w in s)
        generated.update(answer_tokens(e.answer.lower()))
    assert generated <= real, generated - real


def test_write_generated_names_each_kind_and_labels_the_data(tmp_path):
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "generated_qa_train.txt").write_text("1 old\n")  # the old layout
    paths = write_generated(tmp_path / "gen", num_train=40, num_test=20, seed=0, kinds=[1, 19])
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == [
        "README.txt",
        "qa19_generated-path-finding_test.txt",
        "qa19_generated-path-finding_train.txt",
        "qa1_generated-single-supporting-fact_test.txt",
        "qa1_generated-single-supporting-fact_train.txt",
    ]
    readme = paths["readme"].read_text()
    assert "GENERATED" in readme and "not the real bAbI" in readme and "path-finding" in readme
    assert file_name(19, "test") == paths["qa19_test"].name
    found = task_files(tmp_path / "gen", None, "train")
    assert list(found) == [1, 19]
    train, test = read_babi(found[1]), read_babi(paths["qa1_test"])
    assert len(train) == 40 and len(test) == 20 and train[0].task == 1
    assert train[:20] != test  # different seeds per split
    assert paths["qa1_train"].read_text().splitlines() == generate_stories(40, 1, seed=0)


def test_kinds_that_compose_facts_get_more_training_questions_by_default(tmp_path):
    paths = write_generated(tmp_path, num_test=10, kinds=[1, 19])
    assert len(read_babi(paths["qa1_train"])) == TRAIN_QUESTIONS[1] == 3000
    assert len(read_babi(paths["qa19_train"])) == TRAIN_QUESTIONS[19] == 15000
    assert len(read_babi(paths["qa19_test"])) == 10
