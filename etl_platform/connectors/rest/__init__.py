"""rest: one package for the system: reader.py (its Source; the platform writes no rest targets).
"""
