"""Liquid-cooling drivers: coolant distribution units (CDUs) and the DMTF cooling resources they share with BMCs."""
