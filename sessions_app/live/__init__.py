"""The live path: parse VideoDB events, store each once, recover what was missed, publish."""
