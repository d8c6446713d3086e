"""Modbus TCP drivers for facility equipment (CDUs, power shelves) whose register maps are data."""
