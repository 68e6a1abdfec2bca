"""Generate the built-in `demo` task's data: short one-sentence reviews with binary sentiment.

In-domain: restaurant and food reviews (train.jsonl, test.jsonl).
Out-of-domain: gadget/electronics and hotel-stay reviews (ood.jsonl).

Every sentence is produced from the hand-written templates and word lists below, all written for
tuneoff (nothing is taken from an existing data set). Some templates are deliberately harder than a
keyword lookup: negation ("not bad at all"), mixed opinions where the verdict follows "but", and
praise or complaints with no obvious sentiment word.

Standard library only and deterministic: ``python generate.py`` rewrites the three files
byte-for-byte identically every time.

Labels: 0 = negative, 1 = positive. Each line: {"idx": int, "text": str, "label": int}.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent
N_TRAIN_PER_LABEL = 200
N_TEST_PER_LABEL = 100
N_OOD_PER_LABEL = 100
MIN_WORDS, MAX_WORDS = 6, 20

# --------------------------------------------------------------------------------------------
# Restaurant domain
# --------------------------------------------------------------------------------------------

# dish -> (plural?, kind). The kind picks adjectives that suit the dish.
DISHES = {
    "fries": (True, "fried"), "chicken wings": (True, "fried"), "fish and chips": (False, "fried"),
    "fried chicken": (False, "fried"), "calamari": (False, "fried"), "tempura": (False, "fried"),
    "onion rings": (True, "fried"),
    "steak": (False, "meat"), "brisket": (False, "meat"), "salmon": (False, "meat"),
    "lamb shank": (False, "meat"), "pork chop": (False, "meat"), "short ribs": (True, "meat"),
    "roast chicken": (False, "meat"), "grilled octopus": (False, "meat"),
    "ramen": (False, "soup"), "pho": (False, "soup"), "tomato soup": (False, "soup"),
    "curry": (False, "soup"), "chili": (False, "soup"), "beef stew": (False, "soup"),
    "lentil soup": (False, "soup"),
    "tiramisu": (False, "dessert"), "cheesecake": (False, "dessert"), "chocolate cake": (False, "dessert"),
    "carrot cake": (False, "dessert"), "apple pie": (False, "dessert"), "brownies": (True, "dessert"),
    "carbonara": (False, "pasta"), "risotto": (False, "pasta"), "gnocchi": (False, "pasta"),
    "lasagna": (False, "pasta"), "mac and cheese": (False, "pasta"),
    "paella": (False, "rice"), "pad thai": (False, "rice"), "fried rice": (False, "rice"),
    "bibimbap": (False, "rice"), "jambalaya": (False, "rice"),
    "burger": (False, "handheld"), "tacos": (True, "handheld"), "burrito": (False, "handheld"),
    "pizza": (False, "handheld"), "club sandwich": (False, "handheld"), "falafel wrap": (False, "handheld"),
    "dumplings": (True, "handheld"), "banh mi": (False, "handheld"),
    "pancakes": (True, "breakfast"), "omelette": (False, "breakfast"), "eggs benedict": (False, "breakfast"),
    "french toast": (False, "breakfast"), "croissants": (True, "breakfast"), "waffles": (True, "breakfast"),
    "sushi": (False, "fish"), "poke bowl": (False, "fish"), "ceviche": (False, "fish"),
    "caesar salad": (False, "salad"), "greek salad": (False, "salad"), "beet salad": (False, "salad"),
}

FOOD_POS_ANY = ["delicious", "excellent", "outstanding", "wonderful", "really tasty", "full of flavor",
                "packed with flavor", "spot on", "amazing", "fantastic"]
FOOD_NEG_ANY = ["bland", "tasteless", "way too salty", "completely flavorless",
                "disappointing", "awful", "barely edible", "terrible"]
FOOD_POS = {
    "fried": ["crispy", "golden and crunchy", "hot and crispy", "perfectly fried", "crunchy"],
    "meat": ["tender", "juicy", "perfectly cooked", "cooked just right", "melt-in-your-mouth tender"],
    "soup": ["rich", "hearty", "comforting", "fragrant", "rich and warming"],
    "dessert": ["rich", "light and creamy", "not too sweet", "heavenly", "beautifully made"],
    "pasta": ["creamy", "rich", "perfectly seasoned", "generous", "comforting"],
    "rice": ["fragrant", "perfectly seasoned", "generous", "smoky and rich", "well balanced"],
    "handheld": ["fresh", "generous", "perfectly seasoned", "messy in the best way", "huge and tasty"],
    "breakfast": ["fluffy", "light", "buttery", "warm and fresh", "perfectly cooked"],
    "fish": ["fresh", "bright and fresh", "beautifully presented", "generous", "melt-in-your-mouth fresh"],
    "salad": ["fresh", "crisp and fresh", "beautifully presented", "generous", "bright and zesty"],
}
FOOD_NEG = {
    "fried": ["soggy", "greasy", "limp", "dripping with oil", "burnt", "lukewarm"],
    "meat": ["dry", "overcooked", "tough", "chewy", "undercooked", "burnt", "lukewarm"],
    "soup": ["watery", "cold", "far too thin", "greasy", "lukewarm"],
    "dessert": ["sickly sweet", "dry", "stale", "far too sweet", "gummy"],
    "pasta": ["mushy", "gluey", "overcooked", "swimming in oil", "stodgy", "lukewarm"],
    "rice": ["mushy", "swimming in oil", "dry", "lukewarm", "way too sweet"],
    "handheld": ["soggy", "cold", "falling apart", "greasy", "lukewarm"],
    "breakfast": ["rubbery", "dry", "cold", "soggy", "burnt", "lukewarm"],
    "fish": ["far from fresh", "fishy", "warm and mushy", "falling apart"],
    "salad": ["warm and limp", "wilted", "soggy", "drowning in dressing"],
}
NEGATABLE_POS = {
    "fried": ["crispy"], "meat": ["tender", "juicy"], "soup": ["rich", "flavorful"],
    "dessert": ["fresh", "good"], "pasta": ["perfect", "fresh"], "rice": ["fresh", "fragrant"], "handheld": ["fresh", "tasty"],
    "breakfast": ["fluffy", "fresh"], "fish": ["fresh"], "salad": ["fresh", "crisp"],
}
NEGATABLE_NEG = {
    "fried": ["soggy", "greasy"], "meat": ["dry", "tough", "overcooked"], "soup": ["watery", "greasy"],
    "dessert": ["dry", "too sweet"], "pasta": ["mushy", "gluey", "overcooked"], "rice": ["mushy", "dry"],
    "handheld": ["soggy", "greasy", "dry"], "breakfast": ["rubbery", "dry"], "fish": ["fishy"],
    "salad": ["soggy", "wilted"],
}
# dishes that look good, for "looked X but tasted Y"
LOOK_POS = ["beautiful", "amazing", "gorgeous", "great", "incredible", "picture perfect"]
TASTE_NEG = ["bland", "of nothing", "like cardboard", "completely flat", "oddly sour", "strangely bitter"]
LOOK_NEG = ["a bit messy", "plain", "a little sad", "underwhelming", "like nothing special"]
TASTE_POS = ["incredible", "amazing", "fantastic", "delicious", "wonderful", "like home cooking"]

# service: (phrase, plural?, is_person)
SERVICE = [("our server", False, True), ("our waiter", False, True), ("our waitress", False, True),
           ("the host", False, True), ("the bartender", False, True), ("the servers", True, True),
           ("the service", False, False), ("the table service", False, False)]
SVC_POS_PERSON = ["friendly", "attentive", "warm and welcoming", "helpful", "charming",
                  "lovely", "patient with our questions", "full of good recommendations"]
SVC_NEG_PERSON = ["rude", "dismissive", "careless", "grumpy", "clearly annoyed with us", "impatient",
                  "nowhere to be found"]
SVC_POS_SERVICE = ["quick", "attentive", "friendly", "warm", "efficient", "spot on", "fast and friendly"]
SVC_NEG_SERVICE = ["slow", "sloppy", "chaotic", "painfully slow", "careless", "disorganized"]

PLACES = ["restaurant", "bistro", "cafe", "diner", "spot", "place", "neighborhood spot",
          "family restaurant", "lunch spot"]
TIMEFRAMES = ["in years", "in a long time", "in this city", "anywhere", "in ages", "in my life"]
COMPANIONS = ["My husband", "My wife", "My partner", "My mom", "My dad", "My sister", "My brother",
              "My best friend", "My daughter", "My son", "My roommate"]
WHEN = ["last week", "last month", "on Friday", "on my birthday", "over the weekend", "last summer"]
WAITS = ["forty minutes", "almost an hour", "over an hour", "thirty minutes", "ages", "forty-five minutes"]
MILD_FLAWS = ["A little pricey", "A bit loud inside", "Slightly cramped", "Hard to find parking",
              "A bit of a wait", "Not the cheapest place"]
PLACE_FLAWS = ["tiny and a bit cramped", "nothing fancy", "always packed", "a bit noisy",
               "hidden in a strip mall", "pretty plain inside"]
DECOR_POS = ["lovely", "gorgeous", "cozy", "beautiful", "charming", "stylish"]
MEH = ["just okay", "fine but forgettable", "underwhelming", "nothing special", "pretty average",
       "mediocre at best"]
MILD_POS = ["pretty good", "really solid", "better than expected", "a nice surprise", "very good"]
PRICES = ["reasonably priced", "a great deal", "good value for the portion size", "fairly priced"]
PRICE_NEG = ["overpriced", "way too expensive", "a rip-off", "not worth the money"]


def _dish(rng: random.Random, exclude: tuple[str, ...] = ()) -> dict:
    name = rng.choice([d for d in DISHES if d not in exclude])
    plural, kind = DISHES[name]
    return {
        "name": name, "the": f"the {name}",
        "be": "were" if plural else "was", "is": "are" if plural else "is",
        "it": "they" if plural else "it", "them": "them" if plural else "it",
        "pos": rng.choice(FOOD_POS_ANY + FOOD_POS[kind] * 2),
        "pos_s": (pos_s := rng.choice([a for a in FOOD_POS_ANY + FOOD_POS[kind] if " and " not in a])),
        "pos2": rng.choice([a for a in FOOD_POS[kind] if " and " not in a and a != pos_s]),
        "neg": rng.choice(FOOD_NEG_ANY + FOOD_NEG[kind] * 2),
        "neg_s": (neg_s := rng.choice([a for a in FOOD_NEG_ANY + FOOD_NEG[kind] if " and " not in a])),
        "neg2": rng.choice([a for a in FOOD_NEG[kind] if " and " not in a and a != neg_s]),
        # plain words that read naturally after "not" ("not dry at all", "not fresh")
        "pos1w": rng.choice(NEGATABLE_POS[kind]),
        "neg1w": rng.choice(NEGATABLE_NEG[kind]),
        "vessel": "bowl" if kind == "soup" else "plate",
        "another": "another round" if plural else "a second one",
        "on_vessel": "in the bowl" if kind == "soup" else "on the plate",
    }


def _svc(rng: random.Random) -> dict:
    phrase, plural, person = rng.choice(SERVICE)
    return {
        "the": phrase, "be": "were" if plural else "was",
        "pos": rng.choice(SVC_POS_PERSON if person else SVC_POS_SERVICE),
        "neg": rng.choice(SVC_NEG_PERSON if person else SVC_NEG_SERVICE),
    }


def restaurant(rng: random.Random, label: int) -> str:
    d = _dish(rng)
    e = _dish(rng, exclude=(d["name"],))
    s = _svc(rng)
    place = rng.choice(PLACES)
    c = rng.choice
    if label == 1:
        options = [
            # plain praise
            lambda: f"{d['the']} {d['be']} {d['pos']}, and {s['the']} {s['be']} {s['pos']}.",
            lambda: f"{d['the']} {d['be']} {d['pos']} and {e['the']} {e['be']} even better.",
            lambda: f"Honestly the best {d['name']} I have had {c(TIMEFRAMES)}.",
            lambda: f"We loved {d['the']}; {d['it']} {d['be']} {d['pos_s']} and {d['pos2']}.",
            lambda: f"{s['the']} {s['be']} {s['pos']} and {d['the']} came out {d['pos']}.",
            lambda: f"Great {place} with {c(['fresh', 'tasty', 'honest', 'delicious', 'creative'])} food "
                    f"and {c(['friendly', 'lovely', 'attentive', 'welcoming'])} staff.",
            lambda: f"I would happily come back to this {place} just for {d['the']}.",
            lambda: f"Every bite of {d['the']} was {d['pos']}, and we will definitely be back.",
            lambda: f"{d['the']} {d['be']} {d['pos_s']} and {c(PRICES)}.",
            lambda: f"{d['the']} {d['be']} {d['pos']}; worth every penny.",
            lambda: f"Five stars for {d['the']}, which {d['be']} {d['pos']}.",
            lambda: f"Who knew a {place} like this could make {d['the']} taste this good?",
            lambda: f"Highly recommend {d['the']} and {e['the']}, both {c(['excellent', 'superb', 'fantastic', 'great'])}.",
            # praise without obvious sentiment words
            lambda: f"{c(COMPANIONS)} still talks about {d['the']} we had here {c(WHEN)}.",
            lambda: f"I cannot stop thinking about {d['the']} from this {place}.",
            lambda: f"{d['the']} vanished in minutes, so we ordered {d['another']}.",
            lambda: f"Already planning our next visit so I can order {d['the']} again.",
            # negation
            lambda: f"{d['the']} {d['be']} not bad at all, and {s['the']} {s['be']} {s['pos']}.",
            lambda: f"Not a single complaint about {d['the']} or the service.",
            lambda: f"I never expected {d['the']} to be this good at such a small {c(['place', 'cafe', 'diner', 'bistro'])}.",
            lambda: f"{d['the']} {d['be']} not {d['neg1w']} at all, exactly how {d['it']} should be.",
            lambda: f"Nothing about {d['the']} disappointed us; {d['it']} {d['be']} {d['pos']}.",
            lambda: f"You cannot go wrong with {d['the']} here, {d['it']} never {c(['disappoint', 'miss']) if d['it'] == 'they' else c(['disappoints', 'misses'])}.",
            # mixed, verdict positive
            lambda: f"{c(MILD_FLAWS)}, but {d['the']} {d['be']} {d['pos']}, so worth it.",
            lambda: f"The {place} is {c(PLACE_FLAWS)}, yet {d['the']} more than made up for it.",
            lambda: f"We waited {c(WAITS)} for a table, but {d['the']} {d['be']} absolutely worth it.",
            lambda: f"I was worried {d['the']} would be {d['neg1w']}, but {d['it']} {d['be']} {d['pos1w']}.",
            lambda: f"{d['the']} looked {c(LOOK_NEG)} but tasted {c(TASTE_POS)}.",
            lambda: f"{s['the']} {s['be']} a little slow, but {d['the']} {d['be']} {c(MILD_POS)}.",
        ]
    else:
        options = [
            # plain complaints
            lambda: f"{d['the']} {d['be']} {d['neg']} and {s['the']} {s['be']} {s['neg']}.",
            lambda: f"{d['the']} {d['be']} {d['neg']}, and {e['the']} {e['be']} not much better.",
            lambda: f"We waited {c(WAITS)} for {d['the']}, and {d['it']} {d['be']} {d['neg2']} when {d['it']} arrived.",
            lambda: f"{s['the']} {s['be']} {s['neg']}, so we will not be coming back.",
            lambda: f"Sadly {d['the']} {d['be']} {d['neg']}; not worth the price.",
            lambda: f"I sent {d['the']} back because {d['it']} {d['be']} {d['neg2']}.",
            lambda: f"Honestly the worst {d['name']} I have had {c(TIMEFRAMES)}.",
            lambda: f"Never again: {d['the']} {d['be']} {d['neg']} and the bill was huge.",
            lambda: f"{d['the']} {d['be']} {d['neg_s']} and {c(PRICE_NEG)}.",
            lambda: f"One star, {d['the']} {d['be']} {d['neg_s']} and {d['neg2']}.",
            lambda: f"How can {d['the']} be this {c(['bland', 'bad', 'disappointing', d['neg1w'].replace('too ', '')])} at these prices?",
            lambda: f"Avoid {d['the']} at this {place}, {d['it']} {d['be']} {d['neg']}.",
            # complaints without obvious sentiment words
            lambda: f"Found a hair in {d['the']} and nobody even apologized.",
            lambda: f"We left half of {d['the']} {d['on_vessel']} and {c(['went home hungry', 'grabbed pizza afterwards', 'never went back'])}.",
            lambda: f"{c(COMPANIONS)} got sick after eating {d['the']} here {c(WHEN)}.",
            lambda: f"The {place} charged us for {d['the']} we never received.",
            lambda: f"{d['the']} tasted like {d['it']} came straight out of a freezer bag.",
            # negation
            lambda: f"{d['the']} {d['be']} not {d['pos1w']}, and {s['the']} {s['be']} not {c(['friendly', 'attentive', 'helpful'])} either.",
            lambda: f"Not great: {d['the']} {d['be']} {d['neg']} and {s['the']} {s['be']} {s['neg']}.",
            lambda: f"Not terrible, but I would never order {d['the']} again.",
            lambda: f"I would not recommend {d['the']}; {d['it']} {d['be']} {d['neg']}.",
            lambda: f"{d['the']} {d['be']} nowhere near as good as the reviews claimed.",
            # mixed, verdict negative
            lambda: f"I really wanted to like this {place}, but {d['the']} {d['be']} {d['neg']}.",
            lambda: f"{d['the']} looked {c(LOOK_POS)} but tasted {c(TASTE_NEG)}.",
            lambda: f"The decor is {c(DECOR_POS)}, but {d['the']} {d['be']} {d['neg_s']} and overpriced.",
            lambda: f"{s['the']} {s['be']} {s['pos']}, but sadly {d['the']} {d['be']} {d['neg']}.",
            lambda: f"Nice enough {place}, but {d['the']} {d['be']} {c(MEH)} for the price.",
            lambda: f"{d['the']} {d['be']} {c(MEH)} and {e['the']} {e['be']} {e['neg2']}.",
            lambda: f"Good location, but {d['the']} {d['be']} {d['neg']} and {s['the']} {s['be']} {s['neg']}.",
        ]
    return rng.choice(options)()


# --------------------------------------------------------------------------------------------
# Out-of-domain: gadgets / electronics
# --------------------------------------------------------------------------------------------

# item -> (plural?, features)
GADGETS = {
    "headphones": (True, ["sound", "noise cancelling", "battery life", "bass"]),
    "earbuds": (True, ["sound", "battery life", "fit", "microphone"]),
    "bluetooth speaker": (False, ["sound", "battery life", "bass", "volume"]),
    "soundbar": (False, ["sound", "remote", "dialogue clarity"]),
    "laptop": (False, ["screen", "keyboard", "battery life", "trackpad", "performance"]),
    "tablet": (False, ["screen", "battery life", "performance", "stylus support"]),
    "phone": (False, ["camera", "screen", "battery life", "performance"]),
    "monitor": (False, ["picture quality", "color accuracy", "stand", "brightness"]),
    "e-reader": (False, ["screen", "battery life", "backlight"]),
    "smartwatch": (False, ["battery life", "display", "heart rate tracking", "strap"]),
    "keyboard": (False, ["typing feel", "build quality", "backlight"]),
    "wireless mouse": (False, ["tracking", "battery life", "scroll wheel"]),
    "phone charger": (False, ["charging speed", "cable", "build quality"]),
    "power bank": (False, ["capacity", "charging speed", "build quality"]),
    "webcam": (False, ["picture quality", "microphone", "autofocus"]),
    "router": (False, ["range", "speed", "setup app"]),
    "printer": (False, ["print quality", "setup app", "printing speed"]),
    "robot vacuum": (False, ["suction", "battery life", "app", "navigation"]),
    "action camera": (False, ["video quality", "stabilization", "battery life"]),
    "gaming console": (False, ["graphics quality", "controller", "loading speed"]),
}
GADGET_POS = ["excellent", "reliable", "great value", "well built", "solid", "impressive",
              "sturdy", "fantastic", "a great buy", "easy to use", "sleek"]
GADGET_NEG = ["flimsy", "unreliable", "cheaply made", "disappointing", "a waste of money",
              "buggy", "terrible", "awful", "poorly made"]
FEAT_POS = ["excellent", "impressive", "great", "better than I expected", "superb",
            "outstanding", "fantastic"]
FEAT_NEG = ["poor", "weak", "terrible", "disappointing", "worse than advertised", "mediocre",
            "awful", "pretty bad"]
ISSUES = ["kept disconnecting", "died after a month", "broke within a week", "never worked properly",
          "stopped working after two weeks", "kept turning off at random", "started making a buzzing noise",
          "failed after the first update", "ran hot after ten minutes"]
SHORT_PERIODS = ["two days", "a week", "three weeks", "a month", "ten days", "one afternoon"]
LONG_PERIODS = ["six months", "a year", "two years", "eight months", "three months"]
SETUP_TIMES = ["two minutes", "five minutes", "less than ten minutes", "no time at all"]
GADGET_MILD_FLAWS = ["Shipping was slow", "The manual is useless", "The box arrived dented",
                     "A bit heavy", "The color is duller than the photos"]


def gadget(rng: random.Random, label: int) -> str:
    name = rng.choice(list(GADGETS))
    plural, feats = GADGETS[name]
    f1, f2 = rng.sample(feats, 2) if len(feats) > 1 else (feats[0], feats[0])
    this = f"{'these' if plural else 'this'} {name}"
    the = f"the {name}"
    my = f"my new {name}"
    mine = f"my {name}"
    a_second = f"a second pair of {name}" if plural else f"a second {name}"
    a_cheap = f"cheap {name}" if plural else f"a cheap {name}"
    be, it, has = ("are", "they", "have") if plural else ("is", "it", "has")
    feels, works = ("feel", "work") if plural else ("feels", "works")
    c = rng.choice
    gp, gn = c(GADGET_POS), c(GADGET_NEG)
    fp, fn = c(FEAT_POS), c(FEAT_NEG)
    issue = c(ISSUES)
    if label == 1:
        options = [
            lambda: f"{this} {be} {gp} and the {f1} is {fp}.",
            lambda: (f"Setup took {c(SETUP_TIMES)} and {the} {has} worked perfectly ever since."
                     if name not in ("phone charger", "power bank") else
                     f"{this} {has} charged everything I own without a single hiccup."),
            lambda: f"The {f1} on {this} is {fp}, easily worth the price.",
            lambda: f"I have used {mine} every day for {c(LONG_PERIODS)} and {it} still {works} like new.",
            lambda: f"Best {name} I have owned; the {f1} and the {f2} are both {c(['excellent', 'superb', 'great'])}.",
            lambda: f"No complaints after {c(LONG_PERIODS)}, {the} {be} {c([g for g in GADGET_POS if g != 'easy to use'])} and easy to use.",
            lambda: f"{this} arrived quickly and {works} {c(['flawlessly', 'perfectly', 'exactly as described'])}.",
            lambda: f"Would recommend {this} to anyone on a budget; the {f1} is {fp}.",
            lambda: f"Honestly not bad at all for the price, and the {f1} is {fp}.",
            lambda: f"I expected {a_cheap}, but {it} {be} surprisingly {c(['sturdy', 'well built', 'solid', 'good'])}.",
            lambda: f"The {f1} is not perfect, but for the price {this} {be} {gp}.",
            lambda: f"{c(GADGET_MILD_FLAWS)}, but {this} {be} {gp} and the {f1} is {fp}.",
            lambda: f"Bought {a_second} as a gift because I like mine so much.",
            lambda: f"Not a single issue with {my} so far, and the {f1} is {fp}.",
            lambda: f"I was skeptical, but the {f1} on {this} is {fp}.",
        ]
    else:
        options = [
            lambda: f"{this} stopped working after {c(SHORT_PERIODS)} and support never replied.",
            lambda: f"The {f1} is {fn} and {this} {be} {gn}.",
            lambda: f"Returned {the} after {c(SHORT_PERIODS)} because the {f1} was {fn}.",
            lambda: f"Looks nice in the photos, but {this} {feels} {c(['flimsy', 'cheap', 'cheaply made', 'hollow'])} in person.",
            lambda: f"I really wanted to like {this}, but {it} {c(ISSUES)}.",
            lambda: f"The {f1} is fine, but {my} {c(ISSUES)}, so {it} went back.",
            lambda: f"Not great: the {f1} is {fn} and the {f2} is {c(FEAT_NEG)}.",
            lambda: f"{this} {be} {gn}; {it} {c(ISSUES)} and the {f1} is {fn}.",
            lambda: f"Do not buy {this}, {it} {c(ISSUES)}.",
            lambda: f"For this price I expected far more than {this} {c(['deliver', 'offer']) if plural else c(['delivers', 'offers'])}.",
            lambda: f"The {f1} is not nearly as good as the reviews promised.",
            lambda: f"Sturdy enough, but the {f1} is {fn} and {it} {c(ISSUES)}.",
            lambda: f"My second {a_second[9:]} from this brand {issue} {'either' if issue.startswith('never') else 'too'}.",
            lambda: f"Never buying from this brand again; {my} {c(ISSUES)}.",
            lambda: f"Not terrible, but the {f1} on {this} is {c(['mediocre', 'weak', 'underwhelming'])} for the price.",
        ]
    return rng.choice(options)()


# --------------------------------------------------------------------------------------------
# Out-of-domain: hotel stays
# --------------------------------------------------------------------------------------------

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


def ood(rng: random.Random, label: int) -> str:
    return gadget(rng, label) if rng.random() < 0.5 else hotel(rng, label)


# --------------------------------------------------------------------------------------------


def _finish(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:]


def _pool(rng: random.Random, make, label: int, n: int, taken: set[str]) -> list[str]:
    """`n` distinct texts of `label`, none already in `taken` (which is updated)."""
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n:
            raise RuntimeError(f"could not make {n} distinct texts for label {label}")
        text = _finish(make(rng, label))
        if not MIN_WORDS <= len(text.split()) <= MAX_WORDS or text.lower() in taken:
            continue
        taken.add(text.lower())
        out.append(text)
    return out


def _write(path: Path, rows: list[tuple[str, int]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for i, (text, label) in enumerate(rows):
            f.write(json.dumps({"idx": i, "text": text, "label": label}, ensure_ascii=False) + "\n")


def main() -> None:
    rng = random.Random(SEED)
    taken: set[str] = set()
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "test": [], "ood": []}
    for label in (0, 1):
        texts = _pool(rng, restaurant, label, N_TRAIN_PER_LABEL + N_TEST_PER_LABEL, taken)
        splits["train"] += [(t, label) for t in texts[:N_TRAIN_PER_LABEL]]
        splits["test"] += [(t, label) for t in texts[N_TRAIN_PER_LABEL:]]
        splits["ood"] += [(t, label) for t in _pool(rng, ood, label, N_OOD_PER_LABEL, taken)]
    for name, rows in splits.items():
        # shuffle each label, then interleave them in randomly ordered (negative, positive) pairs,
        # so that any prefix of the file is (nearly) balanced
        by_label = [[r for r in rows if r[1] == lab] for lab in (0, 1)]
        for part in by_label:
            rng.shuffle(part)
        rows = []
        for pair in zip(*by_label):
            pair = list(pair)
            rng.shuffle(pair)
            rows += pair
        _write(HERE / f"{name}.jsonl", rows)
        print(f"wrote {name}.jsonl: {len(rows)} rows")


if __name__ == "__main__":
    main()
