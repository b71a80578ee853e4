"""Note-like training texts for the organ-system task, composed from ICD-10-CM and HPO entries.

The terse training texts (one code description or one term definition each) teach the
model little about how clinicians write. This module composes multi-sentence texts in
several styles (clinic note, case narrative, discharge summary, study summary, a
patient's own words) from related entries of the same organ system: ICD-10-CM leaf
descriptions, inclusion terms and index terms ("includes"), HPO names, synonyms
(layperson ones for the patient's words) and definitions. The connecting words (tests,
treatments, clinics of each system) and the templates were written by the team. Some
texts mention a second organ system in passing (a past history), labelled with the main
one; common terms are abbreviated in some texts.

Only entries whose group (ICD category, HPO parent) falls in the training split are used,
so no composed text carries a validation or test group's wording.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

from epee_demo.data.organ_system import ICD_CHAPTERS, LABEL_NAMES, _hpo_obo_path, _split_of, hpo_label

# Written by the team: what each organ system's notes talk about besides the diagnosis.
CONTEXT = {
    "Cardiovascular": {
        "tests": ["ECG", "echocardiogram", "troponin", "coronary angiography", "24-hour Holter monitor",
                  "exercise stress test", "BNP", "ambulatory blood pressure monitoring", "cardiac MRI"],
        "treatments": ["a beta-blocker", "an ACE inhibitor", "a statin", "aspirin", "anticoagulation",
                       "percutaneous coronary intervention", "a loop diuretic", "coronary artery bypass grafting",
                       "catheter ablation", "valve replacement"],
        "clinic": ["cardiology", "the heart failure clinic", "the chest pain unit"],
        "complaints": ["chest pain on exertion", "palpitations", "breathlessness when lying flat",
                       "swollen ankles", "a fainting episode", "tightness in the chest"],
    },
    "Respiratory": {
        "tests": ["chest X-ray", "spirometry", "CT of the chest", "arterial blood gas", "sputum culture",
                  "pulse oximetry", "bronchoscopy", "peak flow monitoring"],
        "treatments": ["an inhaled bronchodilator", "inhaled corticosteroids", "antibiotics", "supplemental oxygen",
                       "non-invasive ventilation", "pulmonary rehabilitation", "chest physiotherapy"],
        "clinic": ["respiratory medicine", "the chest clinic", "pulmonology"],
        "complaints": ["a persistent cough", "wheezing", "shortness of breath", "coughing up sputum",
                       "pain on breathing in", "noisy breathing"],
    },
    "Digestive": {
        "tests": ["upper endoscopy", "colonoscopy", "liver function tests", "abdominal ultrasound",
                  "CT of the abdomen", "stool calprotectin", "serum lipase", "Helicobacter pylori testing"],
        "treatments": ["a proton pump inhibitor", "laparoscopic surgery", "bowel rest", "a low-residue diet",
                       "endoscopic therapy", "antibiotics", "laxatives", "mesalazine"],
        "clinic": ["gastroenterology", "hepatology", "general surgery"],
        "complaints": ["abdominal pain", "heartburn", "nausea and vomiting", "diarrhoea", "blood in the stool",
                       "difficulty swallowing", "bloating"],
    },
    "Neurological": {
        "tests": ["MRI of the brain", "CT of the head", "EEG", "nerve conduction studies", "lumbar puncture",
                  "electromyography", "carotid Doppler"],
        "treatments": ["an antiepileptic drug", "levodopa", "thrombolysis", "physiotherapy", "a triptan",
                       "intravenous steroids", "deep brain stimulation"],
        "clinic": ["neurology", "the stroke unit", "the epilepsy clinic"],
        "complaints": ["headaches", "numbness in the hands", "weakness of one side", "seizures", "dizziness",
                       "memory problems", "tremor"],
    },
    "Mental & behavioural": {
        "tests": ["a mental state examination", "the PHQ-9 questionnaire", "a risk assessment",
                  "a cognitive screening test", "a urine drug screen"],
        "treatments": ["an SSRI", "cognitive behavioural therapy", "an antipsychotic", "lithium",
                       "psychotherapy", "a detoxification programme", "a mood stabiliser"],
        "clinic": ["psychiatry", "the community mental health team", "addiction services"],
        "complaints": ["low mood", "anxiety", "poor sleep", "hearing voices", "loss of interest",
                       "panic attacks", "heavy drinking"],
    },
    "Musculoskeletal": {
        "tests": ["X-ray of the joint", "MRI of the spine", "rheumatoid factor", "bone densitometry",
                  "joint aspiration", "CRP and ESR"],
        "treatments": ["physiotherapy", "NSAIDs", "a joint injection", "methotrexate", "joint replacement",
                       "bisphosphonates", "a brace"],
        "clinic": ["orthopaedics", "rheumatology", "the fracture clinic"],
        "complaints": ["joint pain", "back pain", "stiffness in the morning", "a swollen knee",
                       "muscle weakness", "limited movement of the shoulder"],
    },
    "Skin": {
        "tests": ["a skin biopsy", "dermoscopy", "patch testing", "a fungal scraping", "a wound swab"],
        "treatments": ["a topical corticosteroid", "emollients", "oral isotretinoin", "phototherapy",
                       "topical antifungals", "wound dressings"],
        "clinic": ["dermatology", "the wound care service"],
        "complaints": ["an itchy rash", "red scaly patches", "a blistering eruption", "hair loss",
                       "a non-healing sore", "spots on the face"],
    },
    "Kidney & genitourinary": {
        "tests": ["urinalysis", "serum creatinine and eGFR", "renal ultrasound", "urine culture", "cystoscopy",
                  "PSA"],
        "treatments": ["antibiotics", "intravenous fluids", "dialysis", "an alpha-blocker",
                       "lithotripsy", "a urinary catheter"],
        "clinic": ["nephrology", "urology", "gynaecology"],
        "complaints": ["pain passing urine", "blood in the urine", "flank pain", "passing urine often",
                       "reduced urine output", "pelvic pain"],
    },
    "Eye": {
        "tests": ["visual acuity", "slit-lamp examination", "fundoscopy", "intraocular pressure",
                  "optical coherence tomography", "visual field testing"],
        "treatments": ["eye drops", "cataract surgery", "laser photocoagulation", "intravitreal injections",
                       "an eye patch", "spectacles"],
        "clinic": ["ophthalmology", "the eye casualty"],
        "complaints": ["blurred vision", "a red painful eye", "double vision", "floaters",
                       "loss of vision", "watering eyes"],
    },
    "Ear": {
        "tests": ["otoscopy", "pure-tone audiometry", "tympanometry", "the Dix-Hallpike test",
                  "hearing assessment"],
        "treatments": ["ear drops", "a hearing aid", "grommets", "ear irrigation", "vestibular rehabilitation",
                       "a cochlear implant"],
        "clinic": ["ENT", "audiology"],
        "complaints": ["earache", "hearing loss", "ringing in the ears", "discharge from the ear",
                       "a spinning sensation", "a blocked ear"],
    },
    "Endocrine & metabolic": {
        "tests": ["HbA1c", "thyroid function tests", "fasting glucose", "a lipid profile", "serum cortisol",
                  "serum calcium"],
        "treatments": ["metformin", "insulin", "levothyroxine", "dietary advice", "carbimazole",
                       "hydrocortisone replacement"],
        "clinic": ["endocrinology", "the diabetes clinic", "the metabolic clinic"],
        "complaints": ["thirst and passing urine often", "weight gain", "tiredness", "feeling hot all the time",
                       "weight loss despite eating well"],
    },
    "Blood & immune": {
        "tests": ["a full blood count", "a blood film", "ferritin", "coagulation screen", "immunoglobulins",
                  "bone marrow examination"],
        "treatments": ["iron supplements", "blood transfusion", "vitamin B12 injections", "immunoglobulin infusions",
                       "anticoagulation", "hydroxyurea"],
        "clinic": ["haematology", "immunology"],
        "complaints": ["tiredness and pallor", "easy bruising", "frequent infections", "nosebleeds",
                       "swollen glands"],
    },
    "Neoplasm": {
        "tests": ["a biopsy", "staging CT", "a PET scan", "histopathology", "tumour markers",
                  "a bone scan", "immunohistochemistry"],
        "treatments": ["chemotherapy", "radiotherapy", "surgical resection", "immunotherapy",
                       "targeted therapy", "palliative care", "hormonal therapy"],
        "clinic": ["oncology", "the multidisciplinary tumour board", "the cancer centre"],
        "complaints": ["a lump", "weight loss", "night sweats", "a growing mass", "unexplained bleeding"],
    },
}

# Written by the team: common clinical abbreviations, applied to some texts.
ABBREVIATIONS = {
    "myocardial infarction": "MI", "hypertension": "HTN", "atrial fibrillation": "AF", "heart failure": "HF",
    "coronary artery disease": "CAD", "chronic obstructive pulmonary disease": "COPD",
    "gastroesophageal reflux disease": "GERD", "gastro-oesophageal reflux disease": "GORD",
    "urinary tract infection": "UTI", "chronic kidney disease": "CKD", "acute kidney injury": "AKI",
    "diabetes mellitus": "DM", "rheumatoid arthritis": "RA", "multiple sclerosis": "MS",
    "transient ischemic attack": "TIA", "deep vein thrombosis": "DVT", "pulmonary embolism": "PE",
    "shortness of breath": "SOB", "history of": "h/o", "patient": "pt", "with": "w/", "without": "w/o",
    "magnetic resonance imaging": "MRI", "computed tomography": "CT", "blood pressure": "BP",
    "inflammatory bowel disease": "IBD", "irritable bowel syndrome": "IBS", "carcinoma": "ca",
    "hepatocellular carcinoma": "HCC", "benign prostatic hyperplasia": "BPH", "major depressive disorder": "MDD",
    "generalized anxiety disorder": "GAD", "obstructive sleep apnea": "OSA", "osteoarthritis": "OA",
    "iron deficiency anemia": "IDA", "systemic lupus erythematosus": "SLE", "diagnosis": "dx",
    "treatment": "tx", "examination": "exam", "bilateral": "bilat", "left": "L", "right": "R",
}

AGES = list(range(18, 90))
SEXES = [("man", "He", "his"), ("woman", "She", "her")]
DURATIONS = ["two days", "a week", "three weeks", "two months", "six months", "a year", "several years"]

# {dx}, {finding}, {finding2}: entries of the note's organ system; {other}: an entry of another one.
TEMPLATES = {
    "clinic": [
        "{age}-year-old {sex} seen in clinic with {complaint} for {duration}. {Pronoun} reports {finding}. "
        "{history}Examination and {test} are consistent with {dx}. Plan: {treatment}; review in {clinic}.",
        "Reason for visit: {complaint}.\nHistory: {age} yo {sex}, {finding} and {finding2} over {duration}. "
        "{history}\nAssessment: {dx}.\nPlan: {test}, start {treatment}, refer to {clinic}.",
        "S: {complaint} for {duration}, also {finding}.\nO: {test} abnormal; {finding2}.\nA: {dx}.\n"
        "P: {treatment}. {history}Follow up with {clinic}.",
    ],
    "narrative": [
        "A {age}-year-old {sex} presented with {complaint} and {finding}. {history}Investigations including "
        "{test} showed {finding2}. A diagnosis of {dx} was made and {pronoun} was treated with {treatment}.",
        "We report a {age}-year-old {sex} with {dx}. {Pronoun} had a {duration} history of {complaint}. "
        "{test} revealed {finding}. {history}After {treatment} {possessive} symptoms improved.",
    ],
    "discharge": [
        "Admitted with {complaint}. Working diagnosis {dx}. {history}During the admission {test} showed "
        "{finding}, managed with {treatment}. Discharged home; follow-up in {clinic} for {finding2}.",
        "Discharge summary. Principal diagnosis: {dx}. Secondary findings: {finding}; {finding2}. "
        "{history}Procedures: {test}. Treatment: {treatment}. Follow-up: {clinic}.",
    ],
    "study": [
        "We studied {n} patients with {dx}. All underwent {test}, and {finding} was found in {pct}% of them. "
        "Patients given {treatment} had fewer complications. {history}These results support early referral "
        "to {clinic}.",
        "Background: {dx} is often associated with {finding}. Methods: {n} patients were assessed with {test}. "
        "Results: {finding2} was present in {pct}%. {history}Conclusion: {treatment} should be considered.",
        "The aim of this study was to assess {treatment} in {dx}. Of {n} patients, {pct}% had {finding}. "
        "{test} was repeated at follow-up. {history}",
    ],
    "patient": [
        "I have had {lay} for {duration}, and now {lay2}. {history}My doctor arranged {test} and thinks it is {dx}.",
        "For {duration} I've noticed {lay}. It is getting worse and I also have {lay2}. {history}What could this be?",
    ],
}
HISTORY = ["Past history of {other}. ", "Background of {other}. ", "Known {other}. ",
           "Also has {other}, stable. ", "Incidentally noted {other}. "]


CODE = re.compile(r"\b[A-Z]\d\d")


def _clean(term: str) -> str:
    """An ICD or HPO term as running text: no NOS, no brackets, lower-case start."""
    term = re.sub(r"\s*\bNOS\b", "", term)
    term = re.sub(r"\s*\[[^\]]*\]", "", term)
    term = term.replace("(", "").replace(")", "")
    term = re.sub(r"\s+", " ", term).strip(" ,;.")
    return term[:1].lower() + term[1:] if term[1:2].islower() or len(term) < 2 else term


# Neoplasm entries also in the words notes use for them (ICD-10-CM says "malignant neoplasm").
NEOPLASM_VARIANTS = [
    (r"^malignant neoplasm of (?:the )?", ["cancer of the ", "carcinoma of the ", "a malignant tumour of the ",
                                            "malignancy of the "]),
    (r"^secondary malignant neoplasm of (?:the )?", ["metastases to the ", "metastatic disease of the "]),
    (r"^benign neoplasm of (?:the )?", ["a benign tumour of the ", "an adenoma of the "]),
]


def _neoplasm_variants(term: str) -> list[str]:
    """Other ways a note names an ICD neoplasm entry (none when it is not one of those phrasings)."""
    out = []
    for pattern, replacements in NEOPLASM_VARIANTS:
        if re.match(pattern, term):
            out += [re.sub(pattern, r, term) for r in replacements]
    return out


def _hpo_entries(seed: int) -> tuple[dict, dict]:
    """Training-group HPO terms by label: (names and synonyms, layperson synonyms)."""
    from epee_demo.data.organ_system import parse_obo

    path = _hpo_obo_path()
    terms = parse_obo(path)
    synonyms: dict[str, list[tuple[str, str]]] = defaultdict(list)
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("id: "):
            current = line[4:]
        elif line.startswith("synonym: ") and current:
            match = re.match(r'synonym: "(.*)" (\w+)(?: (\w+))?', line)
            if match:
                synonyms[current].append((match.group(1), match.group(3) or ""))
    memo: dict = {}
    names, lay = defaultdict(list), defaultdict(list)
    for term_id, term in terms.items():
        if term["obsolete"] or "name" not in term or not term["parents"]:
            continue
        if _split_of("hpo:" + term["parents"][0], seed) != "train":
            continue
        label = hpo_label(terms, term_id, memo)
        if label is None:
            continue
        names[label].append(_clean(term["name"]))
        for text, kind in synonyms.get(term_id, []):
            (lay if kind == "layperson" else names)[label].append(_clean(text))
    return names, lay


def _icd_entries(seed: int) -> dict:
    """Training-group ICD-10-CM descriptions, inclusion terms and index terms by label."""
    import simple_icd_10_cm as cm

    entries = defaultdict(list)
    for code in cm.get_all_codes(False):
        if cm.is_chapter_or_block(code):
            continue
        ancestors = cm.get_ancestors(code)
        chapter = ancestors[-1] if ancestors else None
        if chapter not in ICD_CHAPTERS:
            continue
        category = code if cm.is_category(code) else ancestors[-3]
        if _split_of("icd:" + category, seed) != "train":
            continue
        label = ICD_CHAPTERS[chapter]
        texts = [cm.get_description(code)] + cm.get_inclusion_term(code) + cm.get_includes(code)
        texts = [_clean(t) for t in texts if len(t) < 90 and not CODE.search(t)]
        entries[label] += texts
        if label == "Neoplasm":
            entries[label] += [v for t in texts for v in _neoplasm_variants(t)]
    return entries


def _abbreviate(text: str, rng: random.Random) -> str:
    for long, short in ABBREVIATIONS.items():
        if long in text and rng.random() < 0.7:
            text = re.sub(rf"\b{re.escape(long)}\b", short, text)
    return text


def _sentence_case(text: str) -> str:
    return re.sub(r"(^|[.:?]\s+|\n)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def compose_notes(per_class: int = 300, seed: int = 13, other_fraction: float = 0.4,
                  abbreviate_fraction: float = 0.4) -> list[tuple[str, int]]:
    """``per_class`` composed texts for every organ system, as (text, label index), shuffled."""
    rng = random.Random(seed)
    names, lay = _hpo_entries(seed)
    icd = _icd_entries(seed)
    pools = {label: sorted(set(names[label] + icd[label])) for label in LABEL_NAMES}
    lay_pools = {label: sorted(set(lay[label])) for label in LABEL_NAMES}
    styles = sorted(TEMPLATES)
    notes = []
    for index, label in enumerate(LABEL_NAMES):
        context = CONTEXT[label]
        for _ in range(per_class):
            style = rng.choice(styles)
            if style == "patient" and len(lay_pools[label]) < 5:
                style = "clinic"
            others = [x for x in LABEL_NAMES if x != label]
            history = ""
            if rng.random() < other_fraction:
                history = rng.choice(HISTORY).format(other=rng.choice(pools[rng.choice(others)]))
            sex, pronoun, possessive = rng.choice(SEXES)
            lay_pool = lay_pools[label] or context["complaints"]
            text = rng.choice(TEMPLATES[style]).format(
                age=rng.choice(AGES), sex=sex, Pronoun=pronoun, pronoun=pronoun.lower(), possessive=possessive,
                duration=rng.choice(DURATIONS), complaint=rng.choice(context["complaints"]),
                dx=rng.choice(pools[label]), finding=rng.choice(pools[label]), finding2=rng.choice(pools[label]),
                lay=rng.choice(lay_pool), lay2=rng.choice(lay_pool + context["complaints"]),
                test=rng.choice(context["tests"]), treatment=rng.choice(context["treatments"]),
                clinic=rng.choice(context["clinic"]), history=history,
                n=rng.randint(12, 900), pct=rng.randint(5, 85),
            )
            if rng.random() < abbreviate_fraction:
                text = _abbreviate(text, rng)
            text = _sentence_case(text)
            notes.append((text.strip(), index))
    rng.shuffle(notes)
    return notes
