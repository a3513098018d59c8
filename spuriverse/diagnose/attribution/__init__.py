"""Gradient attribution of multiple-choice answers (`spuriverse diagnose attribution`): where in the image
does a local LVLM's answer come from? Methods through captum, maps on the original image raster for each
supported architecture, a shift-invariant default target (log-softmax over the option letters), and
localisation / faithfulness / robustness / sanity scores. See the README's "Diagnose" section."""

from spuriverse.diagnose.attribution.engine import BASELINES, SPACES, Attributor
from spuriverse.diagnose.attribution.layouts import LAYOUTS, UnsupportedArchitecture
from spuriverse.diagnose.attribution.methods import METHODS, MethodParams, UnknownMethod, parse_methods
from spuriverse.diagnose.attribution.metrics import METRICS
from spuriverse.diagnose.attribution.runner import (
    AttributionConfigMismatch,
    AttributionInputError,
    AttributionOptions,
    run_attribution,
)
from spuriverse.diagnose.attribution.target import TARGETS

__all__ = ["BASELINES", "LAYOUTS", "METHODS", "METRICS", "SPACES", "TARGETS", "AttributionConfigMismatch",
           "AttributionInputError", "AttributionOptions", "Attributor", "MethodParams", "UnknownMethod",
           "UnsupportedArchitecture", "parse_methods", "run_attribution"]
