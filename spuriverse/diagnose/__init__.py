"""The diagnose stage: why a model answers as it does. `attribution`: where in the image the answer
comes from (gradient attribution through captum, `spuriverse diagnose attribution`); `influence`: which
training examples taught a behaviour (influence functions, `spuriverse diagnose influence`)."""
