"""s2kd models (torch nn.Modules only)."""
