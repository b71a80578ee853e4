"""Synthetic example notes for the page, written by the team: no real patient text.

Each note is a short, realistic clinical narrative whose main problem concerns one
organ system of the organ-system task (the expected label is given for tests and
for the teaching views; it is what the note was written to be about).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExampleNote:
    """A synthetic note, a short title for the example list, and the organ system it concerns."""

    title: str
    text: str
    expected_label: str


EXAMPLE_NOTES: tuple[ExampleNote, ...] = (
    ExampleNote(
        "Chest pain, ST elevation",
        "62-year-old man with crushing substernal chest pain radiating to the left arm for two hours, "
        "diaphoretic. ECG shows ST elevation in leads II, III and aVF. Troponin elevated. "
        "Assessment: acute inferior myocardial infarction. Plan: aspirin, heparin, urgent cardiac "
        "catheterization.",
        "Cardiovascular",
    ),
    ExampleNote(
        "Wheeze and breathlessness",
        "Patient reports worsening shortness of breath and productive cough over three days. "
        "Expiratory wheeze bilaterally, oxygen saturation 89% on room air, respiratory rate 26. "
        "Chest X-ray: hyperinflated lungs, no consolidation. Impression: acute exacerbation of "
        "chronic obstructive pulmonary disease. Start nebulised bronchodilators and steroids.",
        "Respiratory",
    ),
    ExampleNote(
        "Epigastric pain, melena",
        "Three weeks of burning epigastric pain, worse after meals, now with black tarry stools. "
        "Takes ibuprofen daily for back pain. Hemoglobin dropped from 13 to 10. Upper endoscopy: "
        "bleeding duodenal ulcer, treated endoscopically. Start proton pump inhibitor, stop NSAIDs.",
        "Digestive",
    ),
    ExampleNote(
        "Tremor and slowness",
        "68-year-old woman with a resting tremor of the right hand for a year, now slower in walking and "
        "dressing. Examination: pill-rolling tremor at rest, cogwheel rigidity of the right arm, "
        "bradykinesia, reduced arm swing and a shuffling gait. No cerebellar signs. Impression: "
        "idiopathic Parkinson disease; start levodopa and refer to neurology.",
        "Neurological",
    ),
    ExampleNote(
        "Low mood, insomnia",
        "Two months of persistent low mood, loss of interest in activities, early morning waking, "
        "poor concentration and feelings of worthlessness. Denies suicidal intent. No psychotic "
        "features. Impression: moderate major depressive episode. Start sertraline, refer for "
        "cognitive behavioural therapy.",
        "Mental & behavioural",
    ),
    ExampleNote(
        "Knee pain and stiffness",
        "Chronic pain and stiffness of both knees, worse with walking and stairs, morning stiffness "
        "under 30 minutes. Crepitus and bony enlargement on examination, reduced range of motion. "
        "X-ray: joint space narrowing and osteophytes. Osteoarthritis of the knees; physiotherapy "
        "and analgesia.",
        "Musculoskeletal",
    ),
    ExampleNote(
        "Itchy scaly plaques",
        "Well-demarcated erythematous plaques with silvery scale on the extensor surfaces of the "
        "elbows and knees and on the scalp, mildly itchy, present for a year. Nail pitting noted. "
        "Diagnosis: chronic plaque psoriasis. Topical corticosteroid and vitamin D analogue.",
        "Skin",
    ),
    ExampleNote(
        "Flank pain, haematuria",
        "Sudden severe colicky right flank pain radiating to the groin, with nausea and visible "
        "blood in the urine. Urinalysis: red blood cells, no nitrites. CT shows a 6 mm obstructing "
        "stone in the right ureter with mild hydronephrosis. Renal colic; analgesia and tamsulosin.",
        "Kidney & genitourinary",
    ),
    ExampleNote(
        "Blurred vision, halos",
        "Painful red right eye with blurred vision and halos around lights since this evening, "
        "headache and vomiting. Cornea hazy, pupil mid-dilated and unreactive, intraocular pressure "
        "52 mmHg. Acute angle-closure glaucoma; urgent ophthalmology review.",
        "Eye",
    ),
    ExampleNote(
        "Thirst and weight loss",
        "Polyuria, polydipsia and 5 kg weight loss over six weeks. Random plasma glucose 21 mmol/L, "
        "HbA1c 11%, ketones negative. Diagnosis: type 2 diabetes mellitus with hyperglycemia. "
        "Start metformin, diabetes education, recheck HbA1c in three months.",
        "Endocrine & metabolic",
    ),
)
