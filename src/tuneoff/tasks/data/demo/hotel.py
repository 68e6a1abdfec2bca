"""Out-of-domain texts of the `demo` task: hotel-stay reviews.

Part of the demo data generator (see generate.py): written for tuneoff, standard library only.
"""
from __future__ import annotations

import random

ROOMS = ["the room", "our room", "the suite", "our suite"]
ROOM_POS = ["spotless", "spacious", "bright", "quiet", "cozy", "modern", "beautifully furnished",
            "immaculate", "airy"]
ROOM_NEG = ["dirty", "cramped", "musty", "dated", "noisy", "stuffy", "dark", "freezing cold", "shabby"]
BED_POS = ["incredibly comfortable", "so comfortable", "wonderfully soft", "huge and comfy"]
BED_NEG = ["lumpy", "hard as a rock", "uncomfortable", "saggy", "squeaky"]
STAFF_POS = ["friendly", "helpful", "welcoming", "kind", "wonderful", "attentive"]
STAFF_NEG = ["rude", "unhelpful", "dismissive", "cold", "careless", "clearly uninterested"]
HOTELS = ["hotel", "boutique hotel", "little inn", "resort", "guesthouse", "beach hotel", "city hotel"]
NIGHTS = ["two", "three", "four", "five", "six"]
VIEW_POS = ["stunning", "breathtaking", "gorgeous", "lovely", "spectacular"]
HOTEL_MILD_FLAWS = ["The lobby felt a bit dated", "Parking was expensive", "The elevator was slow",
                    "Check-in took a while", "The pool was a bit small"]
LONG_WAITS = ["over an hour", "forty minutes", "almost an hour", "ages"]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def hotel(rng: random.Random, label: int) -> str:
    c = rng.choice
    room = c(ROOMS)
    rp1, rp2 = rng.sample(ROOM_POS, 2)
    rn1, rn2 = rng.sample(ROOM_NEG, 2)
    h = c(HOTELS)
    if label == 1:
        options = [
            lambda: f"{room} was {rp1} and the bed was {c(BED_POS)}.",
            lambda: f"The front desk staff were {c(STAFF_POS)} and upgraded us for free.",
            lambda: f"Great location, {_a(rp1)} room, and we slept well every night.",
            lambda: f"We stayed {c(NIGHTS)} nights and would happily book this {h} again.",
            lambda: f"The view from our balcony was {c(VIEW_POS)} and {room} was {rp1}.",
            lambda: f"Not bad at all for the price; {room} was {rp1} and the staff were {c(STAFF_POS)}.",
            lambda: f"Check-in was quick and housekeeping kept {room} {c(['spotless', 'tidy', 'perfectly clean'])}.",
            lambda: f"{c(HOTEL_MILD_FLAWS)}, but {room} was {rp1} and {rp2}.",
            lambda: f"Perfect stay: {rp1} room, {c(STAFF_POS)} staff, and an excellent location.",
            lambda: f"I was worried about noise, but {room} was completely quiet at night.",
            lambda: f"A {c(['lovely', 'charming', 'wonderful'])} {h} with {c(STAFF_POS)} staff and a bed that was {c(BED_POS)}.",
            lambda: f"Nothing to complain about; {room} was {rp1} and the bed was {c(BED_POS)}.",
            lambda: "The staff remembered our names and left a card for our anniversary.",
            lambda: f"Already booked this {h} again for next summer.",
            lambda: f"Excellent {h}, {room} was {rp1} and the shower was {c(['hot and strong', 'fantastic', 'great'])}.",
        ]
    else:
        options = [
            lambda: f"{room} was {rn1} and the walls were so thin we barely slept.",
            lambda: f"Check-in took {c(LONG_WAITS)} and the front desk staff were {c(STAFF_NEG)}.",
            lambda: f"The bathroom was {c(['filthy', 'moldy', 'grimy', 'tiny'])} and the shower had no hot water.",
            lambda: "Housekeeping never came once, and the sheets had stains on them.",
            lambda: f"The photos looked great, but {room} was {rn1} and {rn2}.",
            lambda: f"Not worth the price, the bed was {c(BED_NEG)} and {room} was {rn1}.",
            lambda: f"The location is fine, but {room} was {rn1} and the wifi kept dropping.",
            lambda: f"We asked to change rooms twice and the staff were {c(STAFF_NEG)} about it.",
            lambda: f"The pool was closed, {room} was {rn1}, and we will never stay here again.",
            lambda: f"Not terrible, but {room} was {rn1} and overpriced for what it was.",
            lambda: f"This {h} felt more like a cheap motel than a four-star stay.",
            lambda: f"The staff were {c(STAFF_POS)}, but {room} was {rn1} and the bed was {c(BED_NEG)}.",
            lambda: f"I would not recommend this {h}; {room} was {rn1}.",
            lambda: f"We checked out a day early because {room} was {rn1}.",
            lambda: f"Awful {h}: {room} was {rn1} and the hot water never worked.",
        ]
    return rng.choice(options)()

