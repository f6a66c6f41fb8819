"""Synthetic short reviews: the sentiment domain's embedded default data.

Each review is about one topic (a phone, a restaurant, a film, a hotel, headphones) and is
built from 1-3 opinion clauses about aspects of it, with intensifiers ("very", "a bit"),
negation ("was not good", "didn't like"), mixed sentiment ("..., but ...", "Although ...")
and sometimes a closing verdict or a neutral remark. Every clause has a polarity score; the
review's label is the sign of the weighted sum (the clause after "but" / after an
"Although" clause weighs more), then LABEL_NOISE of the labels are flipped (sarcasm,
reviewers who do not mean what they write).

Some reviews mention a person: without any identity term ("my friend"), by relation or
name with a gender ("my sister", "Emily"), by religion ("my Muslim neighbour") or by
nationality ("my Mexican coworker"). These sentences carry no sentiment. Every mention is
drawn with the same probability in positive and negative reviews, except for the groups in
SPURIOUS_LINKS, which are mentioned NEGATIVE_BOOST times as often in negative reviews as in
positive ones (so about NEGATIVE_BOOST / (1 + NEGATIVE_BOOST) of the reviews mentioning
them are negative, against about half for every other group): a controlled spurious link
between an identity term and the negative label, like the skews reported in real corpora
(e.g. identity terms in toxicity data, Dixon et al. 2018). A model can learn it as a
shortcut; the audit and the counterfactual probe should find it. The link is a property of this synthetic data, not
a statement about any group.

Generated with Python's `random.Random(seed)`: the same seed gives the same table.
"""

from __future__ import annotations

import random

import pandas as pd

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
LABEL_NOISE = 0.08
NEGATIVE_BOOST = 4.0
# axis -> group whose mentions are drawn NEGATIVE_BOOST times more often in negative reviews
SPURIOUS_LINKS = {"religion": "muslim", "nationality": "mexican"}
# Probability that a review mentions some group of the axis (positive reviews; negative
# reviews mention the spurious group more on top of that).
MENTION_RATES = {"unmarked": 0.15, "gender": 0.35, "religion": 0.12, "nationality": 0.15}
UNMARKED_PEOPLE = ("friend", "neighbour", "coworker", "colleague", "roommate")
UNMARKED_SENTENCES = ("My {who} recommended {it}.", "I went with my {who}.", "My {who} told me about {it}.")

TOPICS = {
    "phone": {"aspects": ("battery", "screen", "camera", "speaker", "charger", "software", "case"), "be": "is",
              "it": "it", "companion": "I bought it for my {who}.",
              "neutral": ("I bought it last month.", "It arrived on time.", "I have used it for two weeks.")},
    "restaurant": {"aspects": ("food", "service", "dessert", "pasta", "coffee", "atmosphere", "soup"), "be": "was",
                   "it": "the place", "companion": "I went there with my {who}.",
                   "neutral": ("We went there on a Saturday.", "We had a table by the window.",
                               "We ordered three dishes.")},
    "film": {"aspects": ("plot", "acting", "soundtrack", "ending", "dialogue", "pacing", "cast"), "be": "was",
             "it": "the film", "companion": "I watched it with my {who}.",
             "neutral": ("I saw it on a Sunday evening.", "It runs for two hours.", "I watched it at home.")},
    "hotel": {"aspects": ("room", "bed", "breakfast", "location", "pool", "reception", "view"), "be": "was",
              "it": "the hotel", "companion": "I stayed there with my {who}.",
              "neutral": ("We stayed for three nights.", "We arrived late in the evening.",
                          "We booked it online.")},
    "headphones": {"aspects": ("sound", "bass", "fit", "microphone", "cable", "battery"), "be": "is",
                   "it": "it", "companion": "I got them for my {who}.",
                   "neutral": ("They came in a small box.", "I use them on the train.", "I bought them online.")},
}

POSITIVE_ADJECTIVES = {"good": 1.0, "great": 1.5, "excellent": 2.0, "amazing": 2.0, "wonderful": 2.0,
                       "fantastic": 2.0, "superb": 2.0, "lovely": 1.3, "nice": 1.0, "solid": 0.8, "pleasant": 0.9,
                       "decent": 0.5, "impressive": 1.5, "reliable": 1.0, "perfect": 2.0, "fun": 1.0}
NEGATIVE_ADJECTIVES = {"bad": -1.0, "poor": -1.0, "terrible": -2.0, "awful": -2.0, "horrible": -2.0,
                       "disappointing": -1.5, "mediocre": -0.8, "weak": -0.8, "dull": -1.0, "boring": -1.2,
                       "useless": -2.0, "annoying": -1.2, "flimsy": -1.0, "bland": -1.0, "overpriced": -1.2,
                       "broken": -1.5}
INTENSIFIERS = {"very": 1.5, "really": 1.4, "extremely": 2.0, "incredibly": 2.0, "absolutely": 1.8, "so": 1.4,
                "quite": 1.1, "pretty": 1.1, "a bit": 0.5, "somewhat": 0.6, "slightly": 0.4, "fairly": 0.8}
VERBS_PAST = {"loved": 2.0, "liked": 1.0, "enjoyed": 1.5, "adored": 2.0, "appreciated": 1.0, "hated": -2.0,
              "disliked": -1.0, "regretted": -1.5}
VERBS_BASE = {"love": 2.0, "like": 1.0, "enjoy": 1.5, "hate": -2.0, "recommend": 1.2}
NEGATION_FACTOR = -0.5   # "not great" is mildly negative, "not bad" mildly positive

RELATIONS = {"female": ("sister", "mother", "wife", "daughter", "girlfriend", "aunt"),
             "male": ("brother", "father", "husband", "son", "boyfriend", "uncle")}
NAMES = {"female": ("Emily", "Sarah", "Hannah", "Grace", "Olivia", "Laura"),
         "male": ("James", "David", "Daniel", "Michael", "Thomas", "Ryan")}
PRONOUNS = {"female": "she", "male": "he"}
RELIGIONS = {"christian": "Christian", "muslim": "Muslim", "jewish": "Jewish", "hindu": "Hindu",
             "buddhist": "Buddhist"}
NATIONALITIES = {"american": "American", "mexican": "Mexican", "chinese": "Chinese", "indian": "Indian",
                 "nigerian": "Nigerian", "german": "German", "french": "French"}
RELIGION_SENTENCES = ("My {adj} neighbour recommended {it}.", "I went with my {adj} friend.",
                      "A {adj} colleague told me about {it}.")
NATIONALITY_SENTENCES = ("My {adj} coworker recommended {it}.", "I was there with my {adj} friend.",
                         "It was a tip from my {adj} roommate.")


def _clause(rng: random.Random, topic: dict) -> tuple[str, float]:
    aspect = rng.choice(topic["aspects"])
    be = topic["be"]
    form = rng.random()
    if form < 0.55:
        adjectives = POSITIVE_ADJECTIVES if rng.random() < 0.5 else NEGATIVE_ADJECTIVES
        adjective = rng.choice(tuple(adjectives))
        score = adjectives[adjective]
        words = ""
        if rng.random() < 0.5:
            intensifier = rng.choice(tuple(INTENSIFIERS))
            score *= INTENSIFIERS[intensifier]
            words = intensifier + " "
        if rng.random() < 0.25:
            negation = rng.choice((f"{be} not", f"{be}n't", "was never") if be == "was" else (f"{be} not", f"{be}n't"))
            return f"the {aspect} {negation} {words}{adjective}", NEGATION_FACTOR * score
        return f"the {aspect} {be} {words}{adjective}", score
    if form < 0.8:
        verb = rng.choice(tuple(VERBS_PAST))
        if rng.random() < 0.4:
            intensifier = rng.choice(("really", "absolutely", "kind of"))
            factor = {"really": 1.4, "absolutely": 1.8, "kind of": 0.6}[intensifier]
            return f"I {intensifier} {verb} the {aspect}", VERBS_PAST[verb] * factor
        return f"I {verb} the {aspect}", VERBS_PAST[verb]
    verb = rng.choice(("love", "like", "enjoy", "hate"))
    negation = rng.choice(("didn't", "did not"))
    return f"I {negation} {verb} the {aspect}", NEGATION_FACTOR * VERBS_BASE[verb]


def _opinion(rng: random.Random, topic: dict) -> tuple[str, float]:
    kind = rng.random()
    first, a = _clause(rng, topic)
    if kind < 0.35:
        return first[0].upper() + first[1:] + ".", a
    second, b = _clause(rng, topic)
    if kind < 0.6:
        return first[0].upper() + first[1:] + " and " + second + ".", a + b
    if kind < 0.85:
        return first[0].upper() + first[1:] + ", but " + second + ".", 0.6 * a + 1.5 * b
    return "Although " + first + ", " + second + ".", 0.6 * a + 1.5 * b


def _verdict(rng: random.Random, topic: dict) -> tuple[str, float]:
    kind = rng.random()
    if kind < 0.4:
        adjectives = POSITIVE_ADJECTIVES if rng.random() < 0.5 else NEGATIVE_ADJECTIVES
        adjective = rng.choice(tuple(adjectives))
        return f"Overall {topic['it']} was {adjective}.", adjectives[adjective]
    if kind < 0.7:
        if rng.random() < 0.5:
            return f"I would recommend {topic['it']}.", 1.2
        return f"I would {rng.choice(('not', 'never'))} recommend {topic['it']}.", -1.2
    stars = rng.randint(1, 5)
    word = ("one", "two", "three", "four", "five")[stars - 1]
    return f"{word.capitalize()} star{'s' if stars > 1 else ''} out of five.", 0.8 * (stars - 3)


def _mention(rng: random.Random, topic: dict, axis: str, group: str) -> str:
    if axis == "unmarked":
        return rng.choice(UNMARKED_SENTENCES).format(who=rng.choice(UNMARKED_PEOPLE), it=topic["it"])
    if axis == "gender":
        if rng.random() < 0.5:
            return topic["companion"].format(who=rng.choice(RELATIONS[group]))
        name = rng.choice(NAMES[group])
        pronoun = PRONOUNS[group]
        return rng.choice((f"{name} recommended {topic['it']} to me.",
                           f"{name} told me about {topic['it']} and {pronoun} came along."))
    if axis == "religion":
        return rng.choice(RELIGION_SENTENCES).format(adj=RELIGIONS[group], it=topic["it"])
    return rng.choice(NATIONALITY_SENTENCES).format(adj=NATIONALITIES[group], it=topic["it"])


def _pick_group(rng: random.Random, axis: str, groups: tuple[str, ...], label: int,
                spurious: dict[str, str], boost: float) -> str | None:
    """A group of the axis, or None: each group has probability rate / len(groups), times
    `boost` for the spurious group of the axis in negative reviews."""
    share = MENTION_RATES[axis] / len(groups)
    u = rng.random()
    for group in groups:
        u -= share * (boost if (label == 0 and spurious.get(axis) == group) else 1.0)
        if u < 0:
            return group
    return None


def generate_reviews(rows: int = 12000, seed: int = 0, *, spurious_links: dict[str, str] | None = None,
                     negative_boost: float = NEGATIVE_BOOST, label_noise: float = LABEL_NOISE) -> pd.DataFrame:
    """`rows` reviews: columns text, label (1 positive, 0 negative), topic, and the mention
    actually inserted per axis (mention_gender, mention_religion, mention_nationality:
    a group or "none"), which is ground truth for tests, not a model input."""
    if rows < 1:
        raise ValueError(f"rows is {rows}, expected at least 1")
    spurious = dict(SPURIOUS_LINKS if spurious_links is None else spurious_links)
    rng = random.Random(seed)
    topics = tuple(TOPICS)
    axes = {"unmarked": ("person",), "gender": tuple(RELATIONS), "religion": tuple(RELIGIONS),
            "nationality": tuple(NATIONALITIES)}
    records = []
    for _ in range(rows):
        topic_name = rng.choice(topics)
        topic = TOPICS[topic_name]
        opinion, score = _opinion(rng, topic)
        sentences = [opinion]
        if rng.random() < 0.35:
            verdict, verdict_score = _verdict(rng, topic)
            sentences.append(verdict)
            score += verdict_score
        if rng.random() < 0.3:
            sentences.insert(rng.randint(0, len(sentences)), rng.choice(topic["neutral"]))
        if score == 0:
            score = rng.choice((-0.1, 0.1))
        label = int(score > 0)
        if rng.random() < label_noise:
            label = 1 - label
        mentions = {}
        for axis, groups in axes.items():
            group = _pick_group(rng, axis, groups, label, spurious, negative_boost)
            if group is not None:
                mentions[axis] = group
                sentence = _mention(rng, topic, axis, group)
                sentences.insert(0 if rng.random() < 0.6 else len(sentences), sentence)
        records.append({TEXT_COLUMN: " ".join(sentences), LABEL_COLUMN: label, "topic": topic_name,
                        **{f"mention_{axis}": mentions.get(axis, "none") for axis in axes if axis != "unmarked"}})
    return pd.DataFrame.from_records(records)
