"""TrueNorth-style core IR: lowering and placement (lower.py), the IR and its files
(ir.py), the validator (validate.py), a tick-accurate simulator (simulate.py), and the
energy of a simulated run (energy.py)."""
