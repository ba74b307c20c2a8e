from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from densa.corpus import SkipReport, read_corpus
from densa.errors import InputError
from densa.types import Document
from tests.helpers import TINY


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_beir_jsonl_reads_ids_titles_texts_and_metadata() -> None:
    docs = list(read_corpus(TINY / "corpus.jsonl"))
    assert [d.id for d in docs] == [f"d{i}" for i in range(1, 11)]
    assert docs[2].title == "Myocardial infarction"
    assert docs[2].metadata == {"topic": "medical"}
    assert docs[2].full_text.startswith("Myocardial infarction A blocked coronary")


def test_jsonl_keeps_unknown_fields_as_metadata(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.jsonl", [json.dumps({"_id": "a", "text": "x y", "year": 2020})])
    assert next(read_corpus(path)).metadata == {"year": 2020}


def test_tsv_two_and_three_columns_with_header(tmp_path: Path) -> None:
    two = _write(tmp_path / "two.tsv", ["id\ttext", "a\tfirst text", "b\tsecond text"])
    three = _write(tmp_path / "three.tsv", ["a\tTitle A\tbody a"])
    assert [(d.id, d.text) for d in read_corpus(two)] == [("a", "first text"), ("b", "second text")]
    (doc,) = read_corpus(three)
    assert (doc.id, doc.title, doc.text) == ("a", "Title A", "body a")


def test_folder_ids_are_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha text", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# B\nbeta text", encoding="utf-8")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    docs = {d.id: d.text for d in read_corpus(tmp_path)}
    assert docs == {"a.txt": "alpha text", "sub/b.md": "# B\nbeta text"}


def test_iterable_of_documents_dicts_and_pairs() -> None:
    items = [Document("a", "one"), {"_id": "b", "text": "two", "title": "T"}, ("c", "three")]
    assert [(d.id, d.title) for d in read_corpus(items)] == [("a", ""), ("b", "T"), ("c", "")]


def test_reading_is_streaming(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.jsonl", [json.dumps({"_id": "a", "text": "fine"}), "{broken"])
    docs = read_corpus(path)
    assert next(docs).id == "a"  # the bad second line has not been read yet
    with pytest.raises(InputError):
        next(docs)


@pytest.mark.parametrize(
    ("lines", "line", "reason"),
    [
        (['{"_id": "a", "text": "ok"}', '{"_id": "b", "text": '], 2, "malformed JSON"),
        (['{"title": "t", "text": "no id"}'], 1, "missing document id"),
        (['{"_id": "a", "title": "no text"}'], 1, "has no 'text'"),
        (['{"_id": "a", "text": "x"}', '{"_id": "a", "text": "y"}'], 2, "duplicate id 'a'"),
        (['{"_id": "a", "text": "   "}'], 1, "empty text"),
        (['["not", "an", "object"]'], 1, "expected a JSON object"),
    ],
)
def test_jsonl_bad_input_names_file_and_line(
    tmp_path: Path, lines: list[str], line: int, reason: str
) -> None:
    path = _write(tmp_path / "corpus.jsonl", lines)
    with pytest.raises(InputError) as info:
        list(read_corpus(path))
    assert info.value.source == str(path)
    assert info.value.line == line
    assert reason in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_invalid_utf8_in_jsonl_and_tsv(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_bytes(b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"c.jsonl:2: invalid UTF-8"):
        list(read_corpus(jsonl))
    tsv = tmp_path / "c.tsv"
    tsv.write_bytes(b"a\tfine\nb\t\xff\xfe\n")
    with pytest.raises(InputError, match=r"c.tsv:2: invalid UTF-8"):
        list(read_corpus(tsv))


def test_invalid_utf8_in_folder_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"line one\nline two \xff\n")
    with pytest.raises(InputError) as info:
        list(read_corpus(tmp_path))
    assert info.value.source == str(tmp_path / "bad.txt")
    assert info.value.line == 2


def test_tsv_wrong_column_count(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.tsv", ["a\tb\tc\td"])
    with pytest.raises(InputError, match=r"c.tsv:1: expected"):
        list(read_corpus(path))


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_corpus_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match="corpus is empty"):
        list(read_corpus(path))


def test_empty_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="corpus is empty"):
        list(read_corpus(tmp_path))
    with pytest.raises(InputError, match="corpus not found"):
        read_corpus(tmp_path / "nope.jsonl")


def test_skip_bad_goes_on_and_reports(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c.jsonl",
        [
            '{"_id": "a", "text": "good"}',
            "{oops",
            '{"_id": "a", "text": "duplicate"}',
            '{"_id": "b", "text": ""}',
            '{"_id": "c", "text": "also good"}',
        ],
    )
    report = SkipReport()
    docs = list(read_corpus(path, skip_bad=True, report=report))
    assert [d.id for d in docs] == ["a", "c"]
    assert [e.line for e in report.skipped] == [2, 3, 4]
    assert "skipped 3 bad record(s)" in report.summary()


def test_ids_already_taken_are_reported_at_their_line_in_batches(tmp_path: Path) -> None:
    lines = [json.dumps({"_id": f"d{i}", "text": f"text {i}"}) for i in range(2500)]
    path = _write(tmp_path / "c.jsonl", lines)
    asked: list[int] = []

    def taken(ids: Sequence[str]) -> set[str]:
        asked.append(len(ids))
        return {i for i in ids if i in {"d7", "d2100"}}

    report = SkipReport()
    docs = list(read_corpus(path, skip_bad=True, report=report, taken=taken))
    assert len(docs) == 2498 and {"d7", "d2100"}.isdisjoint(d.id for d in docs)
    assert asked == [1024, 1024, 452]  # batched, not one lookup a document
    assert [(e.line, e.reason) for e in report.skipped] == [
        (8, "document id 'd7' is already in the index"),
        (2101, "document id 'd2100' is already in the index"),
    ]
    with pytest.raises(InputError, match=r"c.jsonl:8: document id 'd7' is already in the index"):
        list(read_corpus(path, taken=taken))


def test_skip_bad_with_nothing_valid_is_still_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.jsonl", ["{oops"])
    with pytest.raises(InputError, match="corpus is empty"):
        list(read_corpus(path, skip_bad=True))


def test_iterable_bad_item_names_its_position() -> None:
    with pytest.raises(InputError, match=r"<iterable>:2: cannot read a document from int"):
        list(read_corpus([("a", "ok"), 5]))  # type: ignore[list-item]


def test_json_errors_read_well_and_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "unterminated}\n', encoding="utf-8")
    with pytest.raises(InputError) as error:
        list(read_corpus(path))
    assert "at at" not in str(error.value) and "starting at column" in str(error.value)
    deep = '{"_id": "a", "text": "ok", "metadata": ' + '{"x": ' * 40 + "1" + "}" * 40 + "}"
    path.write_text(deep + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"corpus.jsonl:1: .*nests deeper than 32 levels"):
        list(read_corpus(path))
    path.write_text(
        '{"_id": "a", "text": "ok", "metadata": ' + "[" * 5000 + "]" * 5000 + "}\n", encoding="utf-8"
    )
    with pytest.raises(InputError, match=r"corpus\.jsonl:1: JSON nested deeper than 32 levels"):
        list(read_corpus(path))


def test_unknown_extensions_name_the_option_and_records_are_counted(tmp_path: Path) -> None:
    from densa.corpus import count_records

    odd = tmp_path / "corpus.csv"
    odd.write_text("x")
    with pytest.raises(InputError, match=r"pass --format \(format= in Python\)"):
        list(read_corpus(odd))
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"_id": "a", "text": "x"}\n\n{"_id": "b", "text": "y"}\n', encoding="utf-8")
    tsv = tmp_path / "c.tsv"
    tsv.write_text("id\ttext\na\tx\nb\ty\nc\tz\n", encoding="utf-8")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    for name in ("one.txt", "sub/two.md", "sub/skip.bin"):
        (folder / name).write_text("text")
    assert (count_records(jsonl), count_records(tsv), count_records(folder)) == (2, 3, 2)
