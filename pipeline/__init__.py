"""The multi-attempt RL pipeline. Importing it pins the CPU kernels torch will use (pipeline.numerics), so import
pipeline before torch."""

from pipeline import numerics

numerics.pin()
