"""How the engine's state is shown: text and HTML renderings and the live partition grid widget."""
