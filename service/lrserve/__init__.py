"""lrserve: one learning-rate schedule and one plateau decision for every worker of a training job."""

__version__ = "0.1.0"
