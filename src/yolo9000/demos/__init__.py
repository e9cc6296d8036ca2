"""Experiments end to end on synthetic data (`yolo9000 demo`): each makes its data, trains and
evaluates, and prints what it did and where its results went. The command parses the options
and calls one of them."""
