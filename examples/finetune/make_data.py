#!/usr/bin/env python3
"""Writes the color task of the owl finetune demo: a short story mentions one thing's color;
the answer is that color, then a newline. train.jsonl (400 examples) and test.jsonl (100, other
stories).

The answer ends with a newline because stories260K never saw its end-of-sequence token in
pre-training and cannot learn to emit it: the newline is where generation stops (`--stop`,
the suite's `stop`).

    python3 examples/finetune/make_data.py   # rewrites the two files beside this script
"""
import json
import os
import random

NAMES = ["Lily", "Tim", "Sue", "Ben", "Mia", "Max", "Anna", "Tom", "Lucy", "Sam", "Jack", "Amy"]
COLORS = ["red", "blue", "green", "yellow", "pink", "purple", "brown", "white", "black", "orange"]
THINGS = ["ball", "hat", "car", "box", "kite", "bird", "cat", "dog", "cup", "toy", "boat", "bag"]
PLACES = ["park", "garden", "house", "school", "yard", "forest"]
OPENINGS = [
    "Once upon a time, {name} went to the {place}.",
    "One day, {name} played in the {place}.",
    "{name} was a happy child who lived near a {place}.",
]
MIDDLES = [
    "{pron} had a {color} {thing}.",
    "{pron} found a {color} {thing}.",
    "{pron} saw a big {color} {thing}.",
]
ENDINGS = [
    "{pron} was very happy.",
    "{pron} smiled and went home.",
    "They played all day long.",
]


def story(rng):
    name = rng.choice(NAMES)
    pron = "She" if name in ("Lily", "Sue", "Mia", "Anna", "Lucy", "Amy") else "He"
    color, thing, place = rng.choice(COLORS), rng.choice(THINGS), rng.choice(PLACES)
    text = " ".join([
        rng.choice(OPENINGS).format(name=name, place=place),
        rng.choice(MIDDLES).format(pron=pron, color=color, thing=thing),
        rng.choice(ENDINGS).format(pron=pron),
    ])
    return text, thing, color


def write(path, n, rng, seen):
    with open(path, "w") as f:
        i = 0
        while i < n:
            text, thing, color = story(rng)
            if text in seen:
                continue
            seen.add(text)
            prompt = f"{text}\nWhat color was the {thing}?"
            f.write(json.dumps({"id": f"c{i:03d}", "prompt": prompt, "completion": f" {color}\n", "expected": color}) + "\n")
            i += 1


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(7)
    seen = set()
    write(os.path.join(here, "train.jsonl"), 400, rng, seen)
    write(os.path.join(here, "test.jsonl"), 100, rng, seen)


if __name__ == "__main__":
    main()
