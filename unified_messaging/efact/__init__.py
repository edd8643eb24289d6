"""eFact file formats: the 920000 sending layout and its validator, the feedback messages
(931000, 920098, 920099, 920999, 920900) and their explanations.

Pure formats, no I/O beyond reading a stream: used by invoicing, Mybox and the simulator.
"""
