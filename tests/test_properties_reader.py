"""The batch.properties reader against the real thing: java.util.Properties.

Every case below has an expected dict, checked in pure Python (so the reader is tested where no
JDK is installed) and, when ``java``/``javac`` are present, against ``Properties.load`` itself: a
small Java program, compiled once per module, loads every case file plus a few thousand seeded
random inputs in a single JVM run, and both the expected dicts and the Python reader must agree with
it exactly.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import pytest

from unified_messaging.insurability.properties import (
    PropertiesError,
    load_properties,
    loads_properties,
    read_properties_file,
)

MALFORMED = PropertiesError  # expected outcome: the JDK throws "Malformed \uxxxx encoding."


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expected: Union[dict, type]
    reader: bool = False  # True: text through load(Reader) (UTF-8); False: load(InputStream)

    def parse(self) -> dict[str, str]:
        if self.reader:
            return loads_properties(self.data.decode("utf-8"))
        return load_properties(self.data)


CASES = [
    # --- separators --------------------------------------------------------------------------
    Case("sep-equals", b"key=value\n", {"key": "value"}),
    Case("sep-colon", b"key:value", {"key": "value"}),
    Case("sep-space", b"key value", {"key": "value"}),
    Case("sep-tab-and-formfeed", b"k1\tv1\nk2\fv2", {"k1": "v1", "k2": "v2"}),
    Case("sep-whitespace-around", b"  key \t = \f value", {"key": "value"}),
    Case("sep-whitespace-then-colon", b"key   :   value", {"key": "value"}),
    Case(
        "sep-only-the-first-counts",
        b"key = = v\nk2 :=v\nk3 v = w\nurl=http://h:80/a=b?c:d",
        {"key": "= v", "k2": "=v", "k3": "v = w", "url": "http://h:80/a=b?c:d"},
    ),
    Case("value-trailing-whitespace-kept", b"key = value  \t\f", {"key": "value  \t\f"}),
    Case(
        "key-without-value",
        b"key1\nkey2   \nkey3=\nkey4:\nkey5 = \t",
        {"key1": "", "key2": "", "key3": "", "key4": "", "key5": ""},
    ),
    Case("empty-key", b"=v1", {"": "v1"}),
    Case("empty-key-whitespace-colon", b"  :  v2", {"": "v2"}),
    Case(
        "key-escaped-separators",
        b"a\\=b=1\nc\\:d:2\ne\\ f 3\ng\\\th=4\ni\\\fj=5",
        {"a=b": "1", "c:d": "2", "e f": "3", "g\th": "4", "i\fj": "5"},
    ),
    Case("key-escaped-backslash-then-separator", b"k\\\\=v\nm\\\\\\=n=w", {"k\\": "v", "m\\=n": "w"}),
    Case("key-escape-t-is-not-a-separator", b"k\\tey=v", {"k\tey": "v"}),
    Case("key-leading-escaped-space", b"\\ k=v", {" k": "v"}),
    Case("value-leading-escaped-space", b"k=\\  v", {"k": "  v"}),
    Case("unicode-escaped-separator-does-not-separate", b"a\\u003Db=c\nd\\u0020e f", {"a=b": "c", "d e": "f"}),
    # --- comments and blank lines ------------------------------------------------------------
    Case(
        "comments",
        b"# hash\n! bang\n   # indented\n\f\t!ff\nk=v # not a comment\n",
        {"k": "v # not a comment"},
    ),
    Case("comment-marker-escaped", b"\\#key=1\n\\!k=2", {"#key": "1", "!k": "2"}),
    Case("value-starting-with-comment-marker", b"k=#v\nk2 !v", {"k": "#v", "k2": "!v"}),
    Case("blank-and-whitespace-only-lines", b"\n   \n\t\f\n\r\n \r\nk=v\n\n \t", {"k": "v"}),
    Case("empty-file", b"", {}),
    Case("only-a-comment-no-newline", b"#x", {}),
    Case("comment-does-not-continue-lf", b"# c \\\nk=v", {"k": "v"}),
    Case("comment-does-not-continue-crlf", b"! c \\\r\nk=v\r\n", {"k": "v"}),
    Case("comment-does-not-continue-cr", b"# c \\\rk=v", {"k": "v"}),
    Case("continued-line-starting-with-hash-is-value", b"k=a\\\n  # b\n", {"k": "a# b"}),
    # JDK: '#'/'!' starts a comment whenever the logical line is still empty, even on a
    # continued line (the Javadoc speaks of the first character of a natural line).
    Case("jdk-comment-after-empty-continuation", b"\\\n# c\nk=v", {"k": "v"}),
    Case("jdk-comment-after-blank-continuation", b"  \\\n  ! c \\\nk=v", {"k": "v"}),
    # --- line terminators --------------------------------------------------------------------
    Case("crlf", b"a=1\r\nb=2\r\n\r\nc=3", {"a": "1", "b": "2", "c": "3"}),
    Case("cr-only", b"a=1\rb=2\r\rc=3\r", {"a": "1", "b": "2", "c": "3"}),
    Case("mixed-terminators", b"a=1\nb=2\r\nc=3\rd=4\n\re=5", {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}),
    Case("nel-0x85-is-not-a-terminator", b"k=a\x85b\nx=y", {"k": "a\x85b", "x": "y"}),
    Case("vt-is-not-whitespace", b"a\x0bb=c", {"a\x0bb": "c"}),
    Case("nbsp-is-not-whitespace", b"\xa0k=\xa0v", {"\xa0k": "\xa0v"}),
    # --- continuation lines ------------------------------------------------------------------
    Case("continuation-lf", b"k=one \\\n    two\\\n\tthree", {"k": "one twothree"}),
    Case("continuation-crlf", b"k=a\\\r\n  b\r\nx=y", {"k": "ab", "x": "y"}),
    Case("continuation-cr", b"k=a\\\r  b\rx=y", {"k": "ab", "x": "y"}),
    Case("continuation-formfeed-indent", b"k=a\\\n\f\t b", {"k": "ab"}),
    Case("continuation-inside-key", b"lo\\\n   ng\\\n  key = v", {"longkey": "v"}),
    Case("continuation-before-separator", b"key\\\n   = v", {"key": "v"}),
    Case("even-backslashes-do-not-continue", b"k=a\\\\\nb=c", {"k": "a\\", "b": "c"}),
    Case("three-backslashes-continue", b"k=a\\\\\\\n  b", {"k": "a\\b"}),
    Case("continuation-into-blank-line-ends-it", b"k=a\\\n\nb=c", {"k": "a", "b": "c"}),
    Case("continuation-into-whitespace-line-ends-it", b"k=a\\\n \t\f \nb=c", {"k": "a", "b": "c"}),
    Case("continuation-then-eof", b"k=a\\\n", {"k": "a"}),
    Case("unicode-escape-across-continuation", b"k=\\u00\\\n    41", {"k": "A"}),
    # --- the end of the file -----------------------------------------------------------------
    Case("trailing-backslash-at-eof", b"k=v\\", {"k": "v"}),
    Case("trailing-double-backslash-at-eof", b"k=v\\\\", {"k": "v\\"}),
    # JDK: a lone backslash as the last line is an entry with an empty key and value; so is a
    # backslash + "\n" (or "\r") as the very last bytes, but not a backslash + "\r\n".
    Case("jdk-lone-backslash-at-eof", b"a=1\n\\", {"a": "1", "": ""}),
    Case("jdk-lone-backslash-lf-at-eof", b"a=1\n\\\n", {"a": "1", "": ""}),
    Case("jdk-lone-backslash-cr-at-eof", b"a=1\n\\\r", {"a": "1", "": ""}),
    Case("jdk-lone-backslash-crlf-at-eof", b"a=1\n\\\r\n", {"a": "1"}),
    Case("jdk-lone-backslash-lf-space-at-eof", b"a=1\n\\\n ", {"a": "1"}),
    # --- escapes -----------------------------------------------------------------------------
    Case("escapes-t-n-r-f", b"k=\\t|\\n|\\r|\\f", {"k": "\t|\n|\r|\f"}),
    Case("other-escapes-drop-the-backslash", b"k=\\b\\a\\0\\\"\\'\\/\\q\\\xe9", {"k": "ba0\"'/q\xe9"}),
    Case(
        "unicode-escapes",
        b"k=\\u0041\\u00e9\\u00E9\\u20AC\\u65E5\\u672C\\u0416",
        {"k": "A\xe9\xe9\u20ac\u65e5\u672c\u0416"},
    ),
    Case("unicode-escape-in-key", b"\\u006Bey=v", {"key": "v"}),
    Case("surrogate-pair-from-two-escapes", b"k=\\uD83D\\uDE00!", {"k": "\U0001F600!"}),
    Case("lone-surrogate-kept", b"k=\\uDE00x\\uD83D", {"k": "\ude00x\ud83d"}),
    Case("nul-and-ffff", b"k=\\u0000\\uFFFF", {"k": "\x00\uffff"}),
    # --- encoding ----------------------------------------------------------------------------
    Case("iso-8859-1-bytes", b"caf\xe9=cr\xe8me br\xfbl\xe9e", {"caf\xe9": "cr\xe8me br\xfbl\xe9e"}),
    Case("utf-8-bytes-read-as-latin-1", b"k=\xc3\xa9", {"k": "\xc3\xa9"}),
    Case("utf-8-bom-is-part-of-first-key", b"\xef\xbb\xbfk=v", {"\xef\xbb\xbfk": "v"}),
    # --- repeated keys -----------------------------------------------------------------------
    Case("later-key-overrides", b"a=1\nb=2\na=3\n a : 4", {"a": "4", "b": "2"}),
    # --- a realistic batch.properties --------------------------------------------------------
    Case(
        "realistic-batch-file",
        b"# Insurability batch\r\n"
        b"input.folder = C:\\\\batch\\\\in\r\n"
        b"file.pattern=*.csv\r\n"
        b"output.folder : C:/batch/out\r\n"
        b"csv.separator=;\r\n"
        b"encoding   ISO-8859-1\r\n"
        b"mycarenet.connection=SSO\r\n"
        b"description=Caisse \xe9tudiante \\\r\n"
        b"             (\\u00e9t\\u00e9)\r\n",
        {
            "input.folder": "C:\\batch\\in",
            "file.pattern": "*.csv",
            "output.folder": "C:/batch/out",
            "csv.separator": ";",
            "encoding": "ISO-8859-1",
            "mycarenet.connection": "SSO",
            "description": "Caisse \xe9tudiante (\xe9t\xe9)",
        },
    ),
    # --- malformed \u escapes: the JDK throws IllegalArgumentException -----------------------
    Case("malformed-u-bad-digit", b"k=\\u12G4", MALFORMED),
    Case("malformed-u-short-at-eof", b"k=\\u12", MALFORMED),
    Case("malformed-u-double-u", b"k=\\uu0041", MALFORMED),
    Case("malformed-u-in-key", b"\\uXYZW=v", MALFORMED),
    Case("malformed-u-space", b"k=\\u 041", MALFORMED),
    Case("malformed-u-underscore", b"k=\\u0_41", MALFORMED),  # int(..., 16) would accept it
    Case("malformed-u-plus", b"k=\\u+041", MALFORMED),
    Case("malformed-u-cut-by-line-end", b"k=\\u00\nx=41", MALFORMED),
    # --- load(Reader): text, not bytes -------------------------------------------------------
    Case("reader-non-latin", "k=日本語 €\nκλειδί=τιμή".encode(), {"k": "日本語 €", "κλειδί": "τιμή"}, reader=True),
    Case("reader-astral-char", "😀=emoji \\uD83D\\uDE00".encode(), {"😀": "emoji 😀"}, reader=True),
    Case("reader-u2028-is-not-a-terminator", "k=a\u2028b\u2029c\u0085d".encode(), {"k": "a\u2028b\u2029c\u0085d"}, reader=True),
    Case("reader-bom-is-part-of-first-key", "\ufeffk=v".encode(), {"\ufeffk": "v"}, reader=True),
    Case("reader-ideographic-space-is-not-whitespace", "a\u3000b=c".encode(), {"a\u3000b": "c"}, reader=True),
]

assert len({case.name for case in CASES}) == len(CASES), "case names must be unique"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_expected(case: Case) -> None:
    if case.expected is MALFORMED:
        with pytest.raises(PropertiesError):
            case.parse()
    else:
        assert case.parse() == case.expected


def test_key_order_is_first_appearance() -> None:
    assert list(load_properties(b"b=1\na=2\nb=3\nc=4")) == ["b", "a", "c"]


def test_malformed_unicode_error_names_line_and_fix() -> None:
    data = b"# batch\na=1\n\nc=\\u12G4 rest\n"
    with pytest.raises(PropertiesError) as caught:
        load_properties(data)
    error = caught.value
    assert error.line == 4
    message = str(error)
    assert message.startswith("line 4: ")
    assert '"\\u12G4"' in message
    assert 'value of "c"' in message
    assert "four hexadecimal digits" in message
    assert "double it" in message
    assert "Malformed \\uxxxx encoding." in message


def test_malformed_unicode_error_line_on_continued_line() -> None:
    with pytest.raises(PropertiesError) as caught:
        load_properties(b"k=ok \\\r\n   \\uZZ")
    assert caught.value.line == 2
    assert "(the line ends there)" in str(caught.value)
    assert '"\\uZZ"' in str(caught.value)


def test_malformed_unicode_error_in_key() -> None:
    with pytest.raises(PropertiesError, match=r"line 1: .* in a key"):
        load_properties(b"\\u00=v")


def test_read_properties_file(tmp_path: Path) -> None:
    path = tmp_path / "batch.properties"
    path.write_bytes(b"caf\xe9 = cr\xe8me\r\nmycarenet.connection:SSO\r\n")
    assert read_properties_file(path) == {"caf\xe9": "cr\xe8me", "mycarenet.connection": "SSO"}
    assert read_properties_file(str(path)) == read_properties_file(path)


def test_read_properties_file_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "batch.properties"
    path.write_bytes(b"a=1\nb=\\uXYZ1\n")
    with pytest.raises(PropertiesError) as caught:
        read_properties_file(path)
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"{path}, line 2: ")


def test_wrong_argument_types() -> None:
    with pytest.raises(TypeError, match="loads_properties"):
        load_properties("k=v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="load_properties"):
        loads_properties(b"k=v")  # type: ignore[arg-type]


def test_bytearray_accepted() -> None:
    assert load_properties(bytearray(b"k=v")) == {"k": "v"}  # type: ignore[arg-type]


# --- the JDK as the reference ----------------------------------------------------------------

JAVA_SOURCE = r"""
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;

/** Args: "S:path" (Properties.load(InputStream)), "R:path" (load(Reader), UTF-8), or
 *  "B:path", a bundle of many inputs (each a 4-byte big-endian length, then the bytes), each
 *  loaded with load(InputStream) from a ByteArrayInputStream.
 *  Prints one JSON line per input: {"entries":[[key,value],...]} sorted by key, or
 *  {"error":message}; every character outside printable ASCII is written as a JSON u-escape. */
public class PropertiesDump {
    static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') out.append('\\').append(c);
            else if (c >= 0x20 && c < 0x7f) out.append(c);
            else out.append(String.format("\\u%04x", (int) c));
        }
        out.append('"');
    }

    static String dump(InputStream in, boolean reader) throws IOException {
        Properties props = new Properties();
        StringBuilder out = new StringBuilder();
        try {
            if (reader) props.load(new InputStreamReader(in, StandardCharsets.UTF_8));
            else props.load(in);
        } catch (IllegalArgumentException e) {
            out.append("{\"error\":");
            quote(out, String.valueOf(e.getMessage()));
            return out.append('}').toString();
        }
        TreeMap<String, String> sorted = new TreeMap<>();
        for (String key : props.stringPropertyNames()) sorted.put(key, props.getProperty(key));
        out.append("{\"entries\":[");
        String comma = "";
        for (Map.Entry<String, String> e : sorted.entrySet()) {
            out.append(comma).append('[');
            quote(out, e.getKey());
            out.append(',');
            quote(out, e.getValue());
            out.append(']');
            comma = ",";
        }
        return out.append("]}").toString();
    }

    public static void main(String[] args) throws IOException {
        PrintStream stdout = new PrintStream(new BufferedOutputStream(System.out), false, "US-ASCII");
        for (String arg : args) {
            String path = arg.substring(2);
            if (arg.startsWith("B:")) {
                try (DataInputStream bundle = new DataInputStream(new BufferedInputStream(new FileInputStream(path)))) {
                    while (bundle.available() > 0) {
                        byte[] data = new byte[bundle.readInt()];
                        bundle.readFully(data);
                        stdout.println(dump(new ByteArrayInputStream(data), false));
                    }
                }
            } else {
                try (InputStream in = new FileInputStream(path)) {
                    stdout.println(dump(in, arg.startsWith("R:")));
                }
            }
        }
        stdout.flush();
    }
}
"""

# Building blocks for random files: every rule above, in random order and combination.
_FUZZ_TOKENS = [
    b"a", b"b", b"k", b"=", b":", b" ", b"\t", b"\f", b"\\", b"\\", b"\\", b"\n", b"\r", b"\r\n",
    b"#", b"!", b"\\u0041", b"\\u00", b"\\uD83D", b"\\uDE00", b"u", b"0", b"\xe9", b"\x85", b"\x0b",
    b"\\t", b"\\n", b"\\\n", b"\\\r\n", b"\\\r",
]
FUZZ_SEED = 20240611
FUZZ_COUNT = 3000


def _fuzz_files() -> list[bytes]:
    rng = random.Random(FUZZ_SEED)
    return [
        b"".join(rng.choice(_FUZZ_TOKENS) for _ in range(rng.randint(0, 25)))
        for _ in range(FUZZ_COUNT)
    ]


def _python_result(data: bytes, reader: bool = False) -> dict:
    try:
        parsed = loads_properties(data.decode("utf-8")) if reader else load_properties(data)
    except PropertiesError:
        return {"error": "Malformed \\uxxxx encoding."}
    return {"entries": parsed}


def _jdk_result(line: str) -> dict:
    result = json.loads(line)
    if "entries" in result:
        pairs = result["entries"]
        result["entries"] = dict(pairs)
        assert len(result["entries"]) == len(pairs)
    return result


@pytest.fixture(scope="module")
def jdk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Compile the dump program once, run one JVM over every case and fuzz file."""
    java, javac = shutil.which("java"), shutil.which("javac")
    if not java or not javac:
        pytest.skip("java/javac not installed: the JDK comparison is skipped")
    work = tmp_path_factory.mktemp("jdk-properties")
    (work / "PropertiesDump.java").write_text(JAVA_SOURCE, encoding="utf-8")
    subprocess.run([javac, "-encoding", "UTF-8", "PropertiesDump.java"], cwd=work, check=True, timeout=120)

    args: list[str] = []
    names: list[str] = []
    for index, case in enumerate(CASES):
        file_name = f"case{index:03d}.properties"
        (work / file_name).write_bytes(case.data)
        args.append(("R:" if case.reader else "S:") + file_name)
        names.append(case.name)
    # Thousands of tiny files are slow to write on some disks: one bundle instead.
    fuzz = _fuzz_files()
    (work / "fuzz.bundle").write_bytes(b"".join(len(d).to_bytes(4, "big") + d for d in fuzz))
    args.append("B:fuzz.bundle")
    names.extend(f"fuzz-{index}" for index in range(len(fuzz)))

    run = subprocess.run(
        [java, "-cp", ".", "PropertiesDump", *args],
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == len(names), run.stderr
    return {name: _jdk_result(line) for name, line in zip(names, lines)}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_matches_jdk(case: Case, jdk: dict[str, dict]) -> None:
    java = jdk[case.name]
    if case.expected is MALFORMED:
        assert java == {"error": "Malformed \\uxxxx encoding."}, "the expectation in CASES is wrong"
    else:
        assert java == {"entries": case.expected}, "the expectation in CASES is wrong"
    assert _python_result(case.data, case.reader) == java


def test_random_files_match_jdk(jdk: dict[str, dict]) -> None:
    mismatches = []
    for index, data in enumerate(_fuzz_files()):
        java = jdk[f"fuzz-{index}"]
        python = _python_result(data)
        if python != java:
            mismatches.append(f"{data!r}: JDK {java}, Python {python}")
    assert not mismatches, f"{len(mismatches)} of {FUZZ_COUNT} differ:\n" + "\n".join(mismatches[:10])
