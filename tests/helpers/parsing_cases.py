"""The parser's hand-written trap cases (text, options, expected letter, expected status), shared by
`tests/eval/test_parsing.py` and the answer-shape regression table."""

from __future__ import annotations

CAB = ["skateboarder", "train", "delivery", "cab"]
YN = ["Yes", "No"]
FARM = ["farmer", "doctor", "chef"]
NUM = ["two", "twenty-two", "three", "four"]
SIX = ["red", "green", "blue", "black", "white", "pink"]

CASES: list[tuple[str | None, list[str], str | None, str]] = [
    # -- the brief's traps
    ("A man is standing by the bags, so the answer is (C)", CAB, "C", "strict"),
    ("The answer based on the image is B", CAB, "B", "heuristic"),
    ("(C) nan", YN, None, "unparsed"),
    ("a", CAB, None, "unparsed"),
    ("A man", CAB, None, "unparsed"),
    ("A man is standing next to the bus.", CAB, None, "unparsed"),
    ("I think it's (B), no wait, the answer is (D).", CAB, "D", "strict"),
    ("Answer: (E)", CAB, None, "unparsed"),
    ("The man is waiting for a cab.", CAB, "D", "option_text"),
    ("The image shows a street.\nA man holds a bag.\nAnswer: (B)", CAB, "B", "strict"),
    # -- strict: the whole response is a label
    ("B", CAB, "B", "strict"),
    ("(B)", CAB, "B", "strict"),
    ("B.", CAB, "B", "strict"),
    ("(B).", CAB, "B", "strict"),
    ("(D) cab", CAB, "D", "strict"),
    ("D) cab", CAB, "D", "strict"),
    ("D. cab", CAB, "D", "strict"),
    ("D: cab", CAB, "D", "strict"),
    ("D - cab", CAB, "D", "strict"),
    ("(A) farmer", FARM, "A", "strict"),
    ("(A) A man in a suit", ["A man in a suit", "A woman"], "A", "strict"),
    ("**(B)**", CAB, "B", "strict"),
    ("**B**", CAB, "B", "strict"),
    ("`C`", CAB, "C", "strict"),
    ('"B"', CAB, "B", "strict"),
    ("  B  \n", CAB, "B", "strict"),
    ("[C]", CAB, "C", "strict"),
    ("（B）", CAB, "B", "strict"),
    ("(F) pink", SIX, "F", "strict"),
    ("(B) train\n", CAB, "B", "strict"),
    # -- strict: explicit declarations, the last one wins
    ("Answer: (C)", CAB, "C", "strict"),
    ("Answer: B.", CAB, "B", "strict"),
    ("Answer: C) delivery", CAB, "C", "strict"),
    ("Final answer: C", CAB, "C", "strict"),
    ("The answer is (C)", CAB, "C", "strict"),
    ("The correct answer is: C.", CAB, "C", "strict"),
    ("**Answer:** C", CAB, "C", "strict"),
    ("**Answer: (A)**", CAB, "A", "strict"),
    ("Answer: option D", CAB, "D", "strict"),
    ("The answer is A because the man wears overalls.", FARM, "A", "strict"),
    ("The answer is A.", FARM, "A", "strict"),
    ("(A) looks tempting.\nThe answer is (C).", FARM, "C", "strict"),
    ("Answer: (A)\nOn reflection, Final answer: (B)", CAB, "B", "strict"),
    ("Answer: (C)   \n\n", CAB, "C", "strict"),
    ("Step 1: the sign says TAXI.\nStep 2: taxis are cabs.\n\nAnswer: (D)", CAB, "D", "strict"),
    # -- heuristic
    ("the correct option is (B)", CAB, "B", "heuristic"),
    ("I choose B", CAB, "B", "heuristic"),
    ("I would go with option C.", CAB, "C", "heuristic"),
    ("option B", CAB, "B", "heuristic"),
    ("It must be (B), given the tractor.", FARM, "B", "heuristic"),
    ("B is the correct answer", CAB, "B", "heuristic"),
    ("The best choice is (D).", CAB, "D", "heuristic"),
    ("The answer is likely (B)", CAB, "B", "heuristic"),
    ("The answer is not (A), it is (B)", FARM, "B", "heuristic"),
    ("(B) farmer\nBecause (A) is a doctor, which the image does not show.", FARM, "B", "heuristic"),
    ("B\n\nThe man holds a pitchfork.", FARM, "B", "heuristic"),
    # -- option text
    ("cab", CAB, "D", "option_text"),
    ("Cab.", CAB, "D", "option_text"),
    ("There are twenty-two birds.", NUM, "B", "option_text"),
    ("There are two birds.", NUM, "A", "option_text"),
    ("twenty two", NUM, "B", "option_text"),
    ("Yes", YN, "A", "option_text"),
    ("No, there is no bench.", YN, "B", "option_text"),
    ("(C) Yes", YN, "A", "option_text"),  # invalid letter, but the text is exactly one option
    ("the answer is a cab", CAB, "D", "option_text"),
    # -- unparsed: never guess
    (None, CAB, None, "unparsed"),
    ("", CAB, None, "unparsed"),
    ("   \n", CAB, None, "unparsed"),
    ("answer: b", CAB, None, "unparsed"),
    ("I don't know", CAB, None, "unparsed"),
    ("None of the options", CAB, None, "unparsed"),
    ("It is not a cab.", CAB, None, "unparsed"),
    ("Yes and no.", YN, None, "unparsed"),
    ("(B) or (C)", CAB, None, "unparsed"),
    ("B or C", CAB, None, "unparsed"),
    ("The answer is B or C.", CAB, None, "unparsed"),
    ("A, B", CAB, None, "unparsed"),
    ("(A) is wrong and (B) is wrong", CAB, None, "unparsed"),
    ("The answer is not (A)", CAB, None, "unparsed"),
    ("(C)", YN, None, "unparsed"),
    ("Answer: (C)", YN, None, "unparsed"),
    ("I choose E", CAB, None, "unparsed"),
    ("Answer: (B)\nFinal answer: (E)", CAB, None, "unparsed"),  # the last declaration is invalid
    ("U.S.A.", CAB, None, "unparsed"),
    ("Washington D.C.", CAB, None, "unparsed"),
    ("Answer the question based on the image", CAB, None, "unparsed"),
    ("There is a train and a cab.", CAB, None, "unparsed"),
    ("d", CAB, None, "unparsed"),
    ("(b)", CAB, None, "unparsed"),
]
