"""Out-of-domain texts of the `demo` task: gadget and electronics reviews.

Part of the demo data generator (see generate.py): written for tuneoff, standard library only.
"""
from __future__ import annotations

import random

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

