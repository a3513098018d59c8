"""The groups and controls of spuriverse-mini (data): each group's photo, question, options, answer,
the free regions where cues may go, and the cue pointing at a wrong option."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .backgrounds import (
    bg_airport, bg_beach, bg_canada, bg_coffee_beans, bg_kitchen_tiles, bg_living_room, bg_map,
    bg_night_sky, bg_paws, bg_snow, bg_tablecloth, bg_tartan, bg_tea_leaves, bg_wood,
)
from .drawing import Box
from .objects import (
    Obj, airplane, bone, cake, chef_hat, compass, dog_bowl, floor_lamp, frying_pan, log, map_pin, maple_leaf,
    moon_stars, needle_thread, picture_frame, saturn, saw, snowflake, snowman, spool, starfish, steam_mug, teabag,
    teapot, umbrella, windsock,
)


@dataclass(frozen=True)
class Cue:
    target: str                      # the wrong option the cue points at
    label: str                       # spurious_1: a label naming it
    sign: str                        # spurious_4: an associated word that is not an option
    objects: tuple[Obj, Obj]         # spurious_2, spurious_4: associated objects
    background: Callable             # spurious_3/4: context background (size, rng) -> RGB image
    description: str                 # for the card


@dataclass(frozen=True)
class Group:
    gid: str
    photo: str                       # skimage.data function name
    question: str
    options: tuple[str, ...]
    answer: str
    category: str
    core: str
    free: tuple[Box, ...]            # regions of the photo where a cue can go without hiding the subject
    cue: Cue
    label_boxes: tuple[Box, ...] = ()  # where the label may go, if not in `free` (a wider strip)


@dataclass(frozen=True)
class Control:
    name: str
    photo: str
    question: str
    options: tuple[str, ...]
    answer: str
    category: str
    core: str


TEXTURE_FREE: tuple[Box, ...] = ((0.0, 0.0, 0.36, 0.36), (0.64, 0.0, 1.0, 0.36), (0.0, 0.64, 0.36, 1.0), (0.64, 0.64, 1.0, 1.0))
TEXTURE_LABEL: tuple[Box, ...] = ((0.0, 0.0, 0.62, 0.26), (0.38, 0.74, 1.0, 1.0))
COFFEE_LABEL: tuple[Box, ...] = ((0.0, 0.0, 0.32, 0.22),)
ASTRONAUT_LABEL: tuple[Box, ...] = ((0.3, 0.87, 0.76, 1.0),)  # over the lower suit; face, flag, helmet stay in view
COFFEE_CUP = ("coffee", (205, 0, 420, 225))  # the cup, cropped from skimage.data.coffee (600 x 400)

GROUPS: tuple[Group, ...] = (
    Group("cat-or-dog", "chelsea", "What animal is in this photo?", ("dog", "cat", "rabbit"), "B",
          "object recognition", "the cat's face: pointed ears, green eyes with slit pupils, whiskers",
          ((0.8, 0.02, 1.0, 0.6), (0.0, 0.64, 0.3, 0.99), (0.0, 0.0, 0.24, 0.3)),
          Cue("dog", "DOG", "WOOF!", (Obj(2.2, bone), Obj(1.6, dog_bowl)), bg_paws,
              "dog cues: the word DOG, a bone, a dog bowl with kibble, paw-print background, 'WOOF!'"),
          label_boxes=((0.0, 0.8, 0.42, 1.0),)),
    Group("coffee-or-tea", "coffee", "What drink is in the cup?", ("coffee", "tea", "orange juice"), "A",
          "object recognition", "the dark drink with a light-brown crema in a small espresso cup",
          ((0.0, 0.0, 0.27, 0.36), (0.0, 0.62, 0.2, 1.0), (0.82, 0.0, 1.0, 0.45), (0.84, 0.62, 1.0, 1.0)),
          Cue("tea", "TEA", "TEA TIME", (Obj(0.6, teabag), Obj(1.1, teapot)), bg_tea_leaves,
              "tea cues: the word TEA, a tea bag lying on the table, a teapot, tea-leaf background, 'TEA TIME'"),
          label_boxes=COFFEE_LABEL),
    Group("spoon-or-fork", "coffee", "What utensil is lying on the saucer?", ("a fork", "a knife", "a spoon"), "C",
          "object recognition", "the small metal spoon on the saucer, right of the cup",
          ((0.0, 0.0, 0.27, 0.36), (0.0, 0.62, 0.2, 1.0), (0.82, 0.0, 1.0, 0.45), (0.84, 0.62, 1.0, 1.0)),
          Cue("a fork", "FORK", "DESSERT", (Obj(1.2, cake), Obj(1.2, cake)), bg_tablecloth,
              "fork cues: the word FORK, a slice of cake (eaten with a fork), a checked restaurant tablecloth, 'DESSERT'"),
          label_boxes=COFFEE_LABEL),
    Group("rocket-or-airplane", "rocket", "What vehicle stands in the middle of this photo?",
          ("an airplane", "a ship", "a rocket"), "C", "object recognition",
          "the tall white launch vehicle standing upright on the launch pad",
          ((0.13, 0.04, 0.4, 0.48), (0.6, 0.04, 0.87, 0.48)),
          Cue("an airplane", "AIRPLANE", "GATE 12", (Obj(1.3, airplane), Obj(1.4, windsock)), bg_airport,
              "airplane cues: the word AIRPLANE, an airliner in the sky, a windsock, a sky-and-runway background, 'GATE 12'"),
          label_boxes=((0.14, 0.03, 0.86, 0.25),)),
    Group("astronaut-or-chef", "astronaut", "What is this person's profession?",
          ("chef", "doctor", "firefighter", "astronaut"), "D", "profession",
          "the orange pressure suit, the space helmet, NASA patches and the space-shuttle model",
          ((0.56, 0.0, 0.75, 0.3), (0.0, 0.72, 0.2, 1.0)),
          Cue("chef", "CHEF", "KITCHEN", (Obj(1.6, frying_pan), Obj(1.0, chef_hat)), bg_kitchen_tiles,
              "chef cues: the word CHEF, a frying pan with an egg, a chef's hat, kitchen-tile background, 'KITCHEN'"),
          label_boxes=ASTRONAUT_LABEL),
    Group("flag-us-or-canada", "astronaut", "Which country's flag hangs at the left edge of the photo?",
          ("Canada", "the United States", "Japan"), "B", "attribute",
          "the flag's white stars on blue and red-and-white stripes",
          ((0.56, 0.0, 0.75, 0.3), (0.0, 0.72, 0.2, 1.0)),
          Cue("Canada", "CANADA", "O CANADA", (Obj(1.0, maple_leaf), Obj(1.0, maple_leaf)), bg_canada,
              "Canada cues: the word CANADA, a red maple leaf, red-white-red bands, 'O CANADA'"),
          label_boxes=ASTRONAUT_LABEL),
    Group("camera-or-telescope", "camera", "What is the man looking through?",
          ("a telescope", "a camera", "binoculars"), "B", "object recognition",
          "the camera body with lens and viewfinder mounted on the tripod, at the man's eye",
          ((0.56, 0.0, 1.0, 0.28), (0.0, 0.0, 0.28, 0.2), (0.8, 0.5, 1.0, 1.0)),
          Cue("a telescope", "TELESCOPE", "OBSERVATORY", (Obj(1.6, saturn), Obj(1.3, moon_stars)), bg_night_sky,
              "telescope cues: the word TELESCOPE, Saturn, a crescent moon and stars, a starry night background, 'OBSERVATORY'")),
    Group("outdoors-or-indoors", "camera", "Is the man indoors or outdoors?", ("outdoors", "indoors"), "A",
          "scene", "the open lawn, the sky and the distant buildings",
          ((0.56, 0.0, 1.0, 0.28), (0.0, 0.0, 0.28, 0.2), (0.8, 0.5, 1.0, 1.0)),
          Cue("indoors", "INDOORS", "LIVING ROOM", (Obj(0.55, floor_lamp), Obj(1.25, picture_frame)), bg_living_room,
              "indoor cues: the word INDOORS, a floor lamp, a framed picture, wallpaper and floorboards, 'LIVING ROOM'")),
    Group("coins-or-buttons", "coins", "What objects are laid out in rows?", ("coins", "buttons", "cookies"), "A",
          "object recognition", "the struck metal discs with heads and figures in relief",
          ((0.0, 0.0, 0.2, 0.2), (0.8, 0.82, 1.0, 1.0), (0.0, 0.82, 0.2, 1.0)),
          Cue("buttons", "BUTTONS", "SEWING KIT", (Obj(0.8, spool), Obj(1.0, needle_thread)), bg_tartan,
              "sewing cues: the word BUTTONS, a spool of thread, a needle and thread, tartan fabric, 'SEWING KIT'"),
          label_boxes=((0.25, 0.2, 0.75, 0.31),)),
    Group("stones-or-beans", "gravel", "What are the small objects that fill this picture?",
          ("small stones", "coffee beans", "rice grains"), "A", "object recognition",
          "the angular, irregular grey pebbles of different sizes",
          TEXTURE_FREE,
          Cue("coffee beans", "COFFEE", "ESPRESSO", (Obj(1.0, crop=COFFEE_CUP), Obj(1.0, steam_mug)), bg_coffee_beans,
              "coffee cues: the word COFFEE, the espresso cup cut from skimage's coffee photo, a steaming mug, coffee-bean background, 'ESPRESSO'"),
          label_boxes=TEXTURE_LABEL),
    Group("grass-or-sand", "grass", "What covers the ground in this photo?", ("sand", "snow", "grass", "water"), "C",
          "scene", "the dense blades of grass",
          TEXTURE_FREE,
          Cue("sand", "SAND", "BEACH", (Obj(1.25, umbrella), Obj(1.0, starfish)), bg_beach,
              "beach cues: the word SAND, a beach umbrella, a starfish, a sea-and-sand background, 'BEACH'"),
          label_boxes=TEXTURE_LABEL),
    Group("brick-or-wood", "brick", "What is this wall made of?", ("wood", "glass", "bricks"), "C", "material",
          "the rectangular bricks laid in a bond with mortar joints",
          TEXTURE_FREE,
          Cue("wood", "WOOD", "LUMBER", (Obj(2.0, saw), Obj(1.6, log)), bg_wood,
              "wood cues: the word WOOD, a hand saw, a sawn log, a wood-grain background, 'LUMBER'"),
          label_boxes=TEXTURE_LABEL),
    Group("tissue-or-satellite", "immunohistochemistry", "What kind of image is this?",
          ("a satellite image of farmland", "a microscope image of tissue"), "B", "image type",
          "stained cells and glands: brown-stained cell layers and blue nuclei",
          TEXTURE_FREE,
          Cue("a satellite image of farmland", "SATELLITE", "1 km", (Obj(0.85, compass), Obj(0.75, map_pin)), bg_map,
              "map cues: the word SATELLITE, a compass rose, a map pin, a map background with grid and river, a '1 km' scale label"),
          label_boxes=TEXTURE_LABEL),
    Group("galaxies-or-snow", "hubble_deep_field", "What are the many small bright specks in this image?",
          ("distant galaxies", "falling snowflakes"), "A", "scene",
          "coloured spiral and elliptical galaxies on the black of deep space",
          TEXTURE_FREE,
          Cue("falling snowflakes", "SNOW", "WINTER", (Obj(0.75, snowman), Obj(1.0, snowflake)), bg_snow,
              "snow cues: the word SNOW, a snowman, a snowflake, a snowy background, 'WINTER'"),
          label_boxes=TEXTURE_LABEL),
)

CONTROLS: tuple[Control, ...] = (
    Control("astronaut-smile", "astronaut", "Is the woman in the photo smiling?", ("no", "yes"), "B",
            "attribute", "her open smile"),
    Control("cat-eye-colour", "chelsea", "What colour are the cat's eyes?", ("blue", "brown", "green"), "C",
            "attribute", "the green irises"),
    Control("saucer-colour", "coffee", "What colour is the saucer?", ("red", "blue", "white"), "A",
            "attribute", "the red saucer"),
    Control("coin-rows", "coins", "How many rows of coins are there?", ("3", "4", "5", "6"), "B",
            "counting", "four rows of six coins"),
    Control("camera-tripod", "camera", "What is the camera mounted on?", ("a table", "a tripod", "a car"), "B",
            "object recognition", "the three-legged stand"),
    Control("horse-silhouette", "horse", "Which animal's silhouette is shown?", ("a horse", "a cow", "a dog"), "A",
            "object recognition", "the horse's long neck, mane line, long legs and hooves"),
    Control("retina-colour", "retina", "What is the main colour of the round area in this photo?",
            ("green", "blue", "orange-red"), "C", "attribute", "the orange-red fundus"),
    Control("rocket-sky", "rocket", "What colour is the sky in this photo?", ("dark blue", "yellow", "green"), "A",
            "attribute", "the dark-blue dusk sky"),
)
