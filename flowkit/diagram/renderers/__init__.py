"""Renderers of the neutral ``DiagramGraph``: Graphviz DOT (``dot``) and Mermaid (``mermaid``)."""
