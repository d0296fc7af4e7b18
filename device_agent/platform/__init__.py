"""Platform control: hold CPU/GPU frequencies (set, verify, restore) and watch them and the temperatures."""
