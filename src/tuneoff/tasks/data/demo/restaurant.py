"""The in-domain texts of the `demo` task: one-sentence restaurant and food reviews.

Part of the demo data generator (see generate.py): written for tuneoff, standard library only.
"""
from __future__ import annotations

import random

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

