"""The diagnose stage: why a model answers as it does. `attribution`: where in the image the answer
comes from (gradient attribution through captum, `spuriverse diagnose attribution`)."""
