"""Constitutional AI, SL-CAI phase (recipe ``constitutional``): critique → revision rounds
against principles sampled from a user-editable YAML constitution; SFT and DPO fields."""
