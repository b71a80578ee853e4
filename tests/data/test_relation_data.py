"""Parsers of the relation and event corpora, on tiny synthetic files in each corpus's format."""

import json
import zipfile

from epee_demo.data import ddi, gad, phee

DOC = """<?xml version="1.0" encoding="UTF-8"?>
<document id="DDI-DrugBank.d{n}">
  <sentence id="s0" text="Aspirin increases the effect of warfarin and heparin.">
    <entity id="s0.e0" charOffset="0-6" type="drug" text="Aspirin"/>
    <entity id="s0.e1" charOffset="32-39" type="drug" text="warfarin"/>
    <entity id="s0.e2" charOffset="45-51" type="drug" text="heparin"/>
    <pair id="s0.p0" e1="s0.e0" e2="s0.e1" ddi="true" type="effect"/>
    <pair id="s0.p1" e1="s0.e0" e2="s0.e2" ddi="true"/>
    <pair id="s0.p2" e1="s0.e1" e2="s0.e2" ddi="false"/>
  </sentence>
  <sentence id="s1" text="Inactivated ND and AI vaccines with saponins.">
    <entity id="s1.e0" charOffset="0-13;22-29" type="drug" text="Inactivated ND vaccines"/>
    <entity id="s1.e1" charOffset="0-10;19-20;22-29" type="drug" text="Inactivated AI vaccines"/>
    <pair id="s1.p0" e1="s1.e0" e2="s1.e1" ddi="true" type="mechanism"/>
  </sentence>
  <sentence id="s2" text="Digoxin or quinidine.">
    <entity id="s2.e0" charOffset="0-6" type="drug" text="Digoxin"/>
    <entity id="s2.e1" charOffset="11-19" type="drug" text="quinidine"/>
    <pair id="s2.p0" e1="s2.e0" e2="s2.e1" ddi="false"/>
  </sentence>
</document>"""


def _corpus(tmp_path):
    path = tmp_path / ddi.CORPUS
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(40):
            archive.writestr(f"DDICorpus/Train/DrugBank/d{n}.xml", DOC.format(n=n))
        archive.writestr("DDICorpus/Test/Test for DDI Extraction task/DrugBank/t.xml", DOC.format(n=99))
        archive.writestr("DDICorpus/Test/Test for DrugNER task/DrugBank/ner.xml", DOC.format(n=98))
    return path


def test_ddi_pairs_are_marked_and_labelled(tmp_path):
    pairs = ddi.read_corpus(_corpus(tmp_path))
    test = pairs["test"][:3]  # the DrugNER folder is not read; the untyped true pair is left out
    assert [(p.label, p.text) for p in test] == [
        ("effect", "[DRUG]Aspirin[/DRUG] increases the effect of [DRUG]warfarin[/DRUG] and heparin."),
        ("negative", "Aspirin increases the effect of [DRUG]warfarin[/DRUG] and [DRUG]heparin[/DRUG]."),
        ("mechanism", "[DRUG]Inactivated ND[/DRUG] and [DRUG]AI[/DRUG] vaccines with saponins."),
    ]
    assert len(pairs["train"]) == 40 * 4 and len(pairs["test"]) == 4
    assert all(ddi.SCHEMA.parse(p.text) for p in test)


def test_ddi_dataset_holds_out_whole_documents_and_keeps_every_test_pair(tmp_path):
    _corpus(tmp_path)
    data = ddi.load_ddi(tmp_path)
    assert data.label_names == ddi.LABEL_NAMES and len(data.test) == 4  # every test pair
    positives = sum(label != 0 for label in data.train.labels)
    # the fixture's training documents hold as many negatives as positives, fewer than NEGATIVES_PER_POSITIVE allows
    assert ddi.NEGATIVES_PER_POSITIVE > 1 and data.train.labels.count(0) == positives  # so every one is kept
    assert len(data.val) % 4 == 0 and len(data.val) + positives * 4 // 2 == 160  # whole documents held out
    half = ddi.load_ddi(tmp_path, negatives_per_positive=0.5)  # fewer negatives than the corpus holds
    assert half.train.labels.count(0) == int(0.5 * positives)  # negatives subsampled
    assert half.train.inputs == ddi.load_ddi(tmp_path, negatives_per_positive=0.5).train.inputs  # seeded
    other = ddi.load_ddi(tmp_path, negative_sample_seed=1, negatives_per_positive=0.5)
    assert other.train.labels.count(0) == int(0.5 * positives) and other.train.inputs != half.train.inputs


PHEE_ROW = {
    "id": "1", "context": "A woman developed hepatitis after isoniazid 300 mg daily.",
    "annotations": [{"events": [{
        "event_type": "Adverse_event",
        "Trigger": {"text": [["after"]], "start": [[28]]},
        "Subject": {"text": [["A woman"]], "start": [[0]], "Gender": {"text": [["woman"]], "start": [[2]]}},
        "Treatment": {"text": [["isoniazid 300 mg daily"]], "start": [[34]],
                      "Drug": {"text": [["isoniazid"]], "start": [[34]]},
                      "Dosage": {"text": [["300 mg"]], "start": [[44]]}},
        "Effect": {"text": [["hepatitis"]], "start": [[18]]},
        "Speculated": {"text": [["developed"]], "start": [[8]], "value": True},
    }]}],
}


def _phee(tmp_path, rows):
    folder = tmp_path / phee.FOLDER
    folder.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (folder / f"{split}.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def test_phee_event_type_marks_the_trigger(tmp_path):
    data = phee.load_phee_event_type(_phee(tmp_path, [PHEE_ROW]))
    assert data.test.inputs == ["A woman developed hepatitis [TRIGGER]after[/TRIGGER] isoniazid 300 mg daily."]
    assert data.label_names[data.test.labels[0]] == "adverse event"


def test_phee_roles_take_the_more_specific_role_and_skip_attributes(tmp_path):
    examples = dict(phee.role_examples([PHEE_ROW]))
    assert examples == {
        "[ARG]A woman[/ARG] developed hepatitis after isoniazid 300 mg daily.": "subject",
        "A [ARG]woman[/ARG] developed hepatitis after isoniazid 300 mg daily.": "gender",
        "A woman developed [ARG]hepatitis[/ARG] after isoniazid 300 mg daily.": "effect",
        "A woman developed hepatitis after [ARG]isoniazid 300 mg daily[/ARG].": "treatment",
        "A woman developed hepatitis after [ARG]isoniazid[/ARG] 300 mg daily.": "drug",
        "A woman developed hepatitis after isoniazid [ARG]300 mg[/ARG] daily.": "dosage",
    }
    data = phee.load_phee_argument_role(_phee(tmp_path, [PHEE_ROW]))
    assert data.label_names == phee.ROLE_NAMES and len(data.test) == 6
    assert all(phee.ROLE_SCHEMA.parse(t) for t in data.test.inputs)


def test_phee_span_with_two_roles_in_two_events_is_left_out():
    row = json.loads(json.dumps(PHEE_ROW))
    second = {"event_type": "Adverse_event", "Trigger": {"text": [["after"]], "start": [[28]]},
              "Effect": {"text": [["isoniazid"]], "start": [[34]]}}  # the first event's drug
    row["annotations"][0]["events"].append(second)
    roles = [role for _, role in phee.role_examples([row])]
    assert "drug" not in roles and roles.count("dosage") == 1


def test_phee_argument_role_caps_training_spans_per_role(tmp_path, monkeypatch):
    monkeypatch.setattr(phee, "ROLE_TRAIN_CAP", 1)
    monkeypatch.setattr(phee, "ROLE_VAL_SIZE", 4)
    data = phee.load_phee_argument_role(_phee(tmp_path, [PHEE_ROW, PHEE_ROW]))
    assert sorted(data.train.labels) == sorted({phee.ROLE_NAMES.index(r) for r in dict(phee.role_examples([PHEE_ROW])).values()})
    assert len(data.val) == 4 and len(data.test) == 12  # a seeded sample of dev; test keeps every span


def test_gad_reads_both_file_layouts(tmp_path):
    folder = tmp_path / gad.FOLDER
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("".join(f"@GENE$ and @DISEASE$ row {i}.\t{i % 2}\n" for i in range(20)))
    (folder / "test.tsv").write_text("index\tsentence\tlabel\n0\t@GENE$ \"quoted\" @DISEASE$.\t1\n")
    data = gad.load_gad(tmp_path)
    assert (len(data.train), len(data.val)) == (18, 2)
    assert data.test.inputs == ['@GENE$ "quoted" @DISEASE$.'] and data.test.labels == [1]
