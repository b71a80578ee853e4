"""Synthetic example notes for the page, written by the team: no real patient text.

Each note is a realistic clinical note of several lines whose main problem concerns one
organ system of the organ-system task (the expected label is given for tests and for the
teaching views; it is what the note was written to be about, by the task's ICD-10-CM
chapters: a stroke is a circulatory disease there). Some mention a second organ system
(``also_mentions``); on some the shipped model overthinks (``overthinks``: an earlier exit
answers the expected system and the last exit does not).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExampleNote:
    """A synthetic note, a short title for the example list, and the organ system it concerns."""

    title: str
    text: str
    expected_label: str
    also_mentions: str = ""  # a second organ system the note mentions, if any
    overthinks: bool = False  # the shipped model's earlier exits get it right and its last exit does not


EXAMPLE_NOTES: tuple[ExampleNote, ...] = (
    ExampleNote(
        "Chest pain, ST elevation",
        (
            "ED note, 02:40.\n"
            "62-year-old man, crushing substernal chest pain radiating to the left arm for 2 h, "
            "diaphoretic and nauseated.\n"
            "PMH: HTN, smoker 30 pack-years.\n"
            "ECG: ST elevation II, III, aVF with reciprocal changes in I and aVL. Troponin I 4.2 ng/mL.\n"
            "Assessment: acute inferior STEMI.\n"
            "Plan: aspirin 300 mg, ticagrelor, heparin; cath lab activated for primary PCI."
        ),
        "Cardiovascular",
    ),
    ExampleNote(
        "Breathless, wheeze (COPD)",
        (
            "Respiratory ward review.\n"
            "71F, known COPD (FEV1 38% predicted), 3 days of worsening SOB and green sputum.\n"
            "Obs: RR 26, SpO2 86% on air, T 37.9.\n"
            "Chest: widespread expiratory wheeze, reduced air entry at both bases. CXR hyperinflated, "
            "no consolidation.\n"
            "Impression: infective exacerbation of COPD.\n"
            "Plan: controlled O2 to target 88-92%, nebulised salbutamol and ipratropium, prednisolone "
            "30 mg, doxycycline."
        ),
        "Respiratory",
    ),
    ExampleNote(
        "Melena on NSAIDs",
        (
            "GI bleed, admission note.\n"
            "55M, 3 weeks of burning epigastric pain after meals, black tarry stools since yesterday. "
            "Takes ibuprofen daily for back pain.\n"
            "Hb 9.8 g/dL (13.5 last year), urea raised. Glasgow-Blatchford score 11.\n"
            "OGD: 1.5 cm duodenal ulcer with visible vessel, adrenaline injection and clips applied.\n"
            "Plan: IV PPI infusion, stop NSAIDs, H. pylori biopsy result to follow."
        ),
        "Digestive",
    ),
    ExampleNote(
        "Tremor and slowness",
        (
            "Neurology clinic letter.\n"
            "68-year-old woman, 12 months of a resting tremor of the right hand, now slower at dressing"
            " and walking.\n"
            "On examination: pill-rolling rest tremor R>L, cogwheel rigidity right arm, bradykinesia on"
            " finger taps, reduced arm swing, shuffling gait. No cerebellar or pyramidal signs.\n"
            "Impression: idiopathic Parkinson's disease.\n"
            "Plan: start co-careldopa, physiotherapy, PD nurse specialist."
        ),
        "Neurological",
    ),
    ExampleNote(
        "Low mood, early waking",
        (
            "GP consultation.\n"
            "34-year-old man, 2 months of low mood, no enjoyment in anything, waking at 4 am, poor "
            "concentration at work, feels worthless.\n"
            "Drinking 2-3 beers most nights. Denies suicidal plans; protective factors: children.\n"
            "PHQ-9 score 19.\n"
            "Assessment: moderate to severe depressive episode.\n"
            "Plan: sertraline 50 mg, referral for CBT, review in 2 weeks, safety-net advice given."
        ),
        "Mental & behavioural",
    ),
    ExampleNote(
        "Knee pain, stiffness",
        (
            "Orthopaedic clinic.\n"
            "66F, years of pain in both knees, worse on stairs and after walking, morning stiffness "
            "under 30 min.\n"
            "Exam: crepitus, bony enlargement, small effusion right knee, flexion limited to 100 degrees.\n"
            "X-ray: medial joint space narrowing and osteophytes bilaterally.\n"
            "Dx: primary osteoarthritis of both knees.\n"
            "Plan: weight loss advice, quadriceps physiotherapy, topical NSAID; discuss TKR if no "
            "improvement."
        ),
        "Musculoskeletal",
    ),
    ExampleNote(
        "Scaly plaques, nail pits",
        (
            "Dermatology clinic.\n"
            "29M with a year of itchy, well-demarcated red plaques with silvery scale on elbows, knees "
            "and scalp.\n"
            "Nail pitting and onycholysis on several fingernails. No joint pain.\n"
            "Dx: chronic plaque psoriasis, about 8% body surface area.\n"
            "Plan: potent topical steroid with calcipotriol, coal tar shampoo; consider phototherapy if"
            " not controlled."
        ),
        "Skin",
    ),
    ExampleNote(
        "Flank pain, blood in urine",
        (
            "ED note.\n"
            "41M, sudden severe colicky right loin pain radiating to the groin, vomiting, visible "
            "haematuria.\n"
            "Urine dip: blood +++, nitrites negative. Creatinine normal.\n"
            "CT KUB: 6 mm obstructing calculus at the right vesicoureteric junction, mild hydronephrosis.\n"
            "Dx: right ureteric colic.\n"
            "Plan: analgesia, tamsulosin, strain urine; urology follow-up."
        ),
        "Kidney & genitourinary",
    ),
    ExampleNote(
        "Red painful eye, halos",
        (
            "Eye casualty.\n"
            "Painful red right eye with blurred vision and coloured halos around lights since this "
            "evening, headache and vomiting.\n"
            "VA R 6/36, L 6/6. Cornea hazy, pupil mid-dilated and unreactive. IOP right 52 mmHg.\n"
            "Dx: acute angle-closure glaucoma, right eye.\n"
            "Plan: IV acetazolamide, topical pilocarpine and timolol; laser iridotomy both eyes."
        ),
        "Eye",
    ),
    ExampleNote(
        "Ear pain, discharge",
        (
            "GP note.\n"
            "6-year-old girl, 2 days of right earache and fever, now discharge from the ear and the "
            "pain has eased.\n"
            "Otoscopy: purulent discharge in the right canal, perforated tympanic membrane. Left ear "
            "normal.\n"
            "Dx: acute otitis media with perforation, right.\n"
            "Plan: amoxicillin 5 days, keep the ear dry, review in 6 weeks to check the drum has healed"
            " and hearing."
        ),
        "Ear",
    ),
    ExampleNote(
        "Thirst and weight loss",
        (
            "Diabetes clinic, new patient.\n"
            "45F, polyuria, polydipsia and 5 kg weight loss over six weeks. BMI 31.\n"
            "Random plasma glucose 21 mmol/L, HbA1c 86 mmol/mol (10%), ketones 0.4.\n"
            "Dx: type 2 diabetes mellitus with hyperglycaemia.\n"
            "Plan: metformin titrated to 1 g twice daily, structured education, retinal screening, "
            "recheck HbA1c in 3 months."
        ),
        "Endocrine & metabolic",
    ),
    ExampleNote(
        "Bruising, low platelets",
        (
            "Haematology clinic.\n"
            "27-year-old woman, two weeks of easy bruising, petechiae on the shins and bleeding gums; "
            "well otherwise.\n"
            "No new medicines. Spleen not palpable.\n"
            "FBC: platelets 9 x10^9/L, Hb and white cells normal; film: large platelets, no blasts or "
            "fragments.\n"
            "Dx: immune thrombocytopenia.\n"
            "Plan: prednisolone 1 mg/kg, avoid NSAIDs, repeat count in 3 days; IVIG if bleeding."
        ),
        "Blood & immune",
    ),
    ExampleNote(
        "Breast lump, biopsy",
        (
            "Breast clinic.\n"
            "52-year-old woman with a painless hard lump in the left breast noticed 3 weeks ago.\n"
            "Exam: 2.5 cm irregular mass, upper outer quadrant, one palpable axillary node.\n"
            "Mammogram and US: spiculated lesion, BI-RADS 5. Core biopsy: invasive ductal carcinoma, "
            "grade 2, ER positive, HER2 negative.\n"
            "Plan: staging CT, MDT discussion, wide local excision and sentinel node biopsy, then "
            "adjuvant radiotherapy and endocrine therapy."
        ),
        "Neoplasm",
    ),
    ExampleNote(
        "Two systems: colon cancer, AF",
        (
            "Oncology follow-up.\n"
            "74M with adenocarcinoma of the sigmoid colon, T3N1, after anterior resection, now on "
            "adjuvant FOLFOX, cycle 4 of 8.\n"
            "Also paroxysmal atrial fibrillation, rate controlled on bisoprolol, on apixaban.\n"
            "CEA back to normal. Mild peripheral neuropathy from oxaliplatin.\n"
            "Plan: continue chemotherapy at reduced oxaliplatin dose, surveillance CT at 12 months."
        ),
        "Neoplasm", also_mentions="Cardiovascular",
    ),
    ExampleNote(
        "Two systems: stroke in AF",
        (
            "Stroke unit admission.\n"
            "81-year-old woman found with sudden left arm and leg weakness and slurred speech, onset 90"
            " minutes ago.\n"
            "Irregularly irregular pulse; ECG atrial fibrillation, not anticoagulated.\n"
            "NIHSS 12. CT head: no haemorrhage; CT angiography: right middle cerebral artery occlusion.\n"
            "Dx: acute ischaemic stroke, right MCA territory, cardioembolic.\n"
            "Plan: thrombolysis and thrombectomy, swallow screen, start anticoagulation at day 7."
        ),
        "Cardiovascular", also_mentions="Neurological",
    ),
    ExampleNote(
        "Two systems: DKA with chest infection",
        (
            "Medical admission.\n"
            "23-year-old man with type 1 diabetes, 2 days of vomiting, abdominal pain and rapid deep "
            "breathing; cough with fever for a week.\n"
            "Glucose 28 mmol/L, ketones 5.8, pH 7.12, bicarbonate 9.\n"
            "CXR: right lower lobe consolidation.\n"
            "Dx: diabetic ketoacidosis precipitated by community-acquired pneumonia.\n"
            "Plan: fixed-rate insulin infusion, IV fluids and potassium, co-amoxiclav and clarithromycin."
        ),
        "Endocrine & metabolic", also_mentions="Respiratory",
    ),
    ExampleNote(
        "Two systems: cirrhosis, confusion",
        (
            "Hepatology ward round.\n"
            "58M with alcohol-related cirrhosis, ascites and known varices, admitted drowsy and "
            "confused with a flapping tremor.\n"
            "Constipated for 4 days. Ammonia raised; no focal neurology; CT head normal.\n"
            "Dx: hepatic encephalopathy grade 2, precipitated by constipation.\n"
            "Plan: lactulose to 2-3 soft stools a day, rifaximin, diagnostic ascitic tap, alcohol liaison."
        ),
        "Digestive", also_mentions="Neurological",
    ),
    ExampleNote(
        "Overthinking: Headaches from severe hypertension",
        (
            "Neurology referral.\n"
            "52M, recurrent headaches. BP 210/125 on three readings. Fundi normal.\n"
            "Dx: severe essential hypertension.\n"
            "Plan: amlodipine, ambulatory BP monitoring."
        ),
        "Cardiovascular", overthinks=True,
    ),
    ExampleNote(
        "Overthinking: Seizure in alcohol withdrawal",
        (
            "Admission note.\n"
            "48M, drinks a bottle of vodka daily, stopped 2 days ago. Tremor, sweating, one generalised seizure.\n"
            "Dx: alcohol withdrawal with seizures.\n"
            "Plan: chlordiazepoxide reducing regimen, IV thiamine, alcohol liaison team."
        ),
        "Mental & behavioural", overthinks=True,
    ),
)
