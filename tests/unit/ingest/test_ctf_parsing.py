"""CTF files are streamed with a hardened parser: DTDs and entities are refused before parsing, malformed XML and
misnamed files are refused, pupils come out in file order with their repeated groups."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from pupilshare.generate.census import build_census_extract
from pupilshare.generate.returns import write_ctf
from pupilshare.ingest.ctf import CtfFileError, check_ctf_file, iter_ctf, scan_ctf_bytes, validate_ctf_pupil

HEADER = ("926", "2001", "Sample Primary School", "926", "4001", dt.date(2026, 7, 10))


@pytest.fixture(scope="module")
def pupils():
    return build_census_extract(schools=3, pupils=60, seed=5).pupils[:5]


def _write(tmp_path: Path, text: str, name: str = "9262001_CTF_9264001_001.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<CTfile><Header/><CTFpupilData><Pupil><Surname>&lol3;</Surname></Pupil></CTFpupilData></CTfile>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE CTfile [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<CTfile><Header/><CTFpupilData><Pupil><Surname>&xxe;</Surname></Pupil></CTFpupilData></CTfile>
"""


def test_write_ctf__round_trips_through_iter_ctf(tmp_path, pupils):
    path = tmp_path / "9262001_CTF_9264001_001.xml"
    write_ctf(path, HEADER, pupils, random.Random(1))
    scan_ctf_bytes(path)
    events = list(iter_ctf(path))
    assert events[0][0] == "header"
    header = events[0][1]
    assert (header["source_lea"], header["source_estab"], header["dest_lea"], header["dest_estab"]) == (
        "926", "2001", "926", "4001",
    )  # fmt: skip
    rows = [row for kind, row in events[1:]]
    assert [row["upn"] for row in rows] == [pupil.upn for pupil in pupils]
    assert rows[0]["dob"] == pupils[0].dob.isoformat()
    assert rows[0]["postcode"] == pupils[0].address.postcode
    assert rows[0]["attendance"][0]["Estab"] == "2001"
    assert all(validate_ctf_pupil(row, set()) == [] for row in rows)


@pytest.mark.parametrize("text", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_scan_ctf_bytes__refuses_dtd_and_entities(tmp_path, text):
    with pytest.raises(CtfFileError) as error:
        scan_ctf_bytes(_write(tmp_path, text))
    assert error.value.rule_id == "CTF-DTD-FORBIDDEN"
    assert "root:" not in str(error.value)


@pytest.mark.parametrize("text", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_iter_ctf__refuses_a_dtd_even_without_the_byte_scan(tmp_path, text):
    with pytest.raises(CtfFileError) as error:
        list(iter_ctf(_write(tmp_path, text)))
    assert error.value.rule_id == "CTF-DTD-FORBIDDEN"


def test_scan_ctf_bytes__finds_a_doctype_split_across_chunks(tmp_path, monkeypatch):
    import pupilshare.ingest.ctf as ctf

    monkeypatch.setattr(ctf, "_CHUNK", 7)
    with pytest.raises(CtfFileError):
        scan_ctf_bytes(_write(tmp_path, "<?xml version='1.0'?>\n" + XXE.split("\n", 1)[1]))


def test_iter_ctf__malformed_xml_is_refused(tmp_path):
    text = "<?xml version='1.0'?><CTfile><Header></Header><CTFpupilData><Pupil><UPN>A</Pupil>"
    with pytest.raises(CtfFileError) as error:
        list(iter_ctf(_write(tmp_path, text)))
    assert error.value.rule_id == "CTF-MALFORMED"


def test_iter_ctf__wrong_root_is_refused(tmp_path):
    with pytest.raises(CtfFileError) as error:
        list(iter_ctf(_write(tmp_path, "<?xml version='1.0'?><Census><Header/></Census>")))
    assert error.value.rule_id == "CTF-ROOT"


def test_scan_ctf_bytes__utf16_is_refused(tmp_path):
    path = tmp_path / "9262001_CTF_9264001_001.xml"
    path.write_text("<?xml version='1.0' encoding='UTF-16'?><CTfile/>", encoding="utf-16")
    with pytest.raises(CtfFileError) as error:
        scan_ctf_bytes(path)
    assert error.value.rule_id == "FILE-ENCODING"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("9262001_CTF_9264001_001.xml", ("926", "2001", "926", "4001")),
        ("9262001_CTF_XXXXXXX_001.xml", ("926", "2001", "XXX", "XXXX")),
        ("9262001_CTF_MMMMMMM_002.xml", ("926", "2001", "MMM", "MMMM")),
    ],
)
def test_check_ctf_file__reads_source_and_destination(tmp_path, name, expected):
    assert check_ctf_file(_write(tmp_path, "<CTfile/>", name), 10_000) == expected


@pytest.mark.parametrize("name", ["ctf.xml", "926200_CTF_9264001_001.xml", "9262001_CTF_9264001_001.txt"])
def test_check_ctf_file__bad_names_are_refused(tmp_path, name):
    with pytest.raises(CtfFileError) as error:
        check_ctf_file(_write(tmp_path, "<CTfile/>", name), 10_000)
    assert error.value.rule_id == "CTF-FILE-NAME"


def test_check_ctf_file__oversized_is_refused(tmp_path):
    with pytest.raises(CtfFileError) as error:
        check_ctf_file(_write(tmp_path, "<CTfile>" + " " * 100 + "</CTfile>"), 50)
    assert error.value.rule_id == "FILE-TOO-LARGE"


def test_validate_ctf_pupil__flags_bad_upn_date_sex_and_repeat():
    good = {"upn": "W926206426003", "surname": "Smith", "forename": "Ann", "dob": "2015-02-03", "sex": "F"}
    seen: set[str] = set()
    assert validate_ctf_pupil(good, seen) == []
    assert [issue[0] for issue in validate_ctf_pupil(good, seen)] == ["ROW-DUPLICATE"]
    bad = good | {"upn": "A926206426003", "dob": "03/02/2015", "sex": "X", "surname": ""}
    rules = {issue[0] for issue in validate_ctf_pupil(bad, set())}
    assert rules == {"ROW-BLANK", "ROW-UPN-INVALID", "ROW-DATE-INVALID", "CTF-SEX"}


def _pupil_by_lookup(pupil) -> dict:
    """The reader the one-pass ``_pupil`` replaced (one ``findtext``/``find`` per item): the oracle it must match."""

    def text(element, path):
        return "" if element is None else (element.findtext(path) or "").strip()

    def children(parent, tag):
        if parent is None:
            return []
        return [
            {child.tag: (child.text or "").strip() for child in item if isinstance(child.tag, str)}
            for item in parent.iterfind(tag)
        ]

    basic, address, sen = pupil.find("BasicDetails"), pupil.find("Address"), pupil.find("SENhistory")
    bs7666 = address.find("BS7666Address") if address is not None else None
    address_tags = {
        "saon": "SAON", "paon": "PAON", "street": "Street", "locality": "Locality", "town": "Town",
        "administrative_area": "AdministrativeArea", "post_town": "PostTown", "uprn": "UniquePropertyReferenceNumber",
    }  # fmt: skip
    return {
        **{column: text(pupil, tag) for column, tag in (("upn", "UPN"), ("surname", "Surname"))},
        **{column: text(pupil, tag) for column, tag in (("forename", "Forename"), ("dob", "DOB"), ("sex", "Sex"))},
        "middle_names": text(basic, "MiddleNames"),
        "preferred_surname": text(basic, "PreferredSurname"),
        "nc_year_actual": text(basic, "NCyearActual"),
        "ethnicity": text(basic, "Ethnicity"),
        "first_language": text(basic, "Languages/Type/Language"),
        "enrol_status": text(basic, "EnrolStatus"),
        **{column: text(bs7666, tag) for column, tag in address_tags.items()},
        "postcode": text(address, "PostCode"),
        "fsm_history": children(pupil.find("FSMhistory"), "FSMinstance"),
        "sen_history": {
            "provisions": children(sen, "SEN"),
            "needs": children(sen.find("SENneeds") if sen is not None else None, "SENneed"),
        },
        "attendance": children(pupil.find("Attendance"), "YearData"),
        "school_history": children(pupil.find("SchoolHistory"), "School"),
    }


ODD_PUPILS = [
    # items repeated: the first wins, in every group (as findtext and find give)
    "<Pupil><UPN> A1 </UPN><UPN>B2</UPN><Surname/><BasicDetails><MiddleNames>x</MiddleNames><MiddleNames>y"
    "</MiddleNames><Languages><Type><LanguageType>F</LanguageType></Type><Type><Language> POL </Language></Type>"
    "</Languages><Languages><Type><Language>ENG</Language></Type></Languages></BasicDetails>"
    "<BasicDetails><Ethnicity>WBRI</Ethnicity></BasicDetails>"
    "<Address><PostCode>NR1 1AA</PostCode><BS7666Address><PAON>1</PAON><PAON>2</PAON></BS7666Address>"
    "<BS7666Address><Street>Late Street</Street></BS7666Address><PostCode>NR2 2BB</PostCode></Address>"
    "<Address><PostCode>NR3 3CC</PostCode></Address>"
    "<FSMhistory><FSMinstance><FSMstartDate>2024-01-01</FSMstartDate><FSMstartDate>2024-02-02</FSMstartDate>"
    "</FSMinstance><Other/><FSMinstance/></FSMhistory><FSMhistory><FSMinstance><X>1</X></FSMinstance></FSMhistory>"
    "<SENhistory><SEN><SENprovision>K</SENprovision></SEN><SENneeds><SENneed><SENtype>ASD</SENtype></SENneed>"
    "</SENneeds><SENneeds><SENneed><SENtype>MLD</SENtype></SENneed></SENneeds><SEN><SENprovision>E</SENprovision>"
    "</SEN></SENhistory></Pupil>",
    # items missing, empty groups, text with a child inside, whitespace only, nested items of the wrong parent
    "<Pupil><Surname>Ó'Brien <b>x</b> tail</Surname><Forename>  </Forename><BasicDetails/><Address/>"
    "<SENhistory/><Attendance><YearData/></Attendance><SchoolHistory><School><LEA>926</LEA></School>"
    "</SchoolHistory><Languages><Type><Language>FRE</Language></Type></Languages><PostCode>NR9 9ZZ</PostCode>"
    "</Pupil>",
    "<Pupil/>",
    "<Pupil><BasicDetails><Languages><Language>SPA</Language><Type/></Languages></BasicDetails>"
    "<Address><SAON>flat</SAON></Address></Pupil>",
]


def test_pupil__one_pass_reader_gives_the_lookup_readers_answers_on_odd_input():
    from lxml import etree

    from pupilshare.ingest.ctf import _pupil

    for text in ODD_PUPILS:
        element = etree.fromstring(text)
        assert _pupil(element) == _pupil_by_lookup(element), text


def test_pupil__one_pass_reader_gives_the_lookup_readers_answers_on_generated_ctfs(tmp_path):
    from lxml import etree

    from pupilshare.ingest.ctf import _pupil

    path = tmp_path / "9262001_CTF_9264001_001.xml"
    pupils = build_census_extract(schools=4, pupils=400, seed=11).pupils
    write_ctf(path, HEADER, pupils, random.Random(3))
    elements = list(etree.parse(str(path)).getroot().iterfind("CTFpupilData/Pupil"))
    assert len(elements) == len(pupils)
    rows = [_pupil(element) for element in elements]
    assert rows == [_pupil_by_lookup(element) for element in elements]
    assert any(row["sen_history"]["needs"] for row in rows) and any(row["fsm_history"] for row in rows)


def test_copy_fields__escapes_copy_specials_and_sends_blanks_as_null():
    r"""Tab, newline, carriage return and backslash in a value are escaped; '' becomes \N; groups are JSON."""
    from pupilshare.ingest.ctf import _JSON_COLUMNS, _PUPIL_TEXT_COLUMNS, _copy_fields

    pupil = dict.fromkeys(_PUPIL_TEXT_COLUMNS, "") | dict.fromkeys(_JSON_COLUMNS, [])
    assert _copy_fields(pupil) == "\t".join([r"\N"] * len(_PUPIL_TEXT_COLUMNS) + ["[]"] * len(_JSON_COLUMNS))
    pupil |= {"surname": "O\tB\\r\nx\ry", "forename": "Ann", "fsm_history": [{"a": 'q"\\'}]}
    fields = _copy_fields(pupil).split("\t")
    assert len(fields) == len(_PUPIL_TEXT_COLUMNS) + len(_JSON_COLUMNS)
    assert fields[_PUPIL_TEXT_COLUMNS.index("surname")] == r"O\tB\\r\nx\ry"
    assert fields[_PUPIL_TEXT_COLUMNS.index("forename")] == "Ann"
    assert fields[len(_PUPIL_TEXT_COLUMNS) + _JSON_COLUMNS.index("fsm_history")] == r'[{"a": "q\\"\\\\"}]'
