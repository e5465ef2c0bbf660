"""The offline preview backend: a clearly labelled draft image drawn from the request.

No key, no network, synchronous: submit() returns the finished PNG. The draft shows what the
request asks for (quoted text as a headline, the prompt, the brand palette, the references with
their roles, model, size and seed) under a "PREVIEW — not FLUX.2" banner, so nobody mistakes it
for a render. Same request and seed give byte-identical PNGs; another seed moves and recolours
the layout. A request without a seed gets a random one, reported back like a real provider does.
"""
