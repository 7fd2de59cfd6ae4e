//! Word lists the generator draws names and texts from.

pub const PLACES: &[&str] = &[
    "Barking",
    "Hackney",
    "Newham",
    "Camden",
    "Islington",
    "Haringey",
    "Enfield",
    "Barnet",
    "Harrow",
    "Brent",
    "Ealing",
    "Hounslow",
    "Hillingdon",
    "Richmond",
    "Kingston",
    "Merton",
    "Sutton",
    "Croydon",
    "Bromley",
    "Lewisham",
    "Greenwich",
    "Bexley",
    "Havering",
    "Redbridge",
    "Waltham Forest",
    "Tower Hamlets",
    "Southwark",
    "Lambeth",
    "Wandsworth",
    "Hammersmith",
    "Fulham",
    "Kensington",
    "Chelsea",
    "Westminster",
    "Whittington",
    "Homerton",
    "Northwick Park",
    "Royal Free",
    "Guy's and St Thomas'",
    "King's College",
];

pub const ICB_AREAS: &[&str] = &[
    "North East London",
    "North Central London",
    "North West London",
    "South East London",
    "South West London",
    "Kent and Medway",
    "Frimley",
    "Surrey Heartlands",
    "Hertfordshire and West Essex",
    "Mid and South Essex",
    "Bedfordshire, Luton and Milton Keynes",
    "Buckinghamshire, Oxfordshire and Berkshire West",
];

pub const TRUST_KINDS: &[&str] = &[
    "Hospitals NHS Foundation Trust",
    "University Hospitals NHS Trust",
    "Community Healthcare NHS Trust",
    "Mental Health NHS Foundation Trust",
    "Healthcare NHS Trust",
];

pub const PRACTICE_KINDS: &[&str] = &["Medical Practice", "Surgery", "Health Centre", "Group Practice"];

pub const STREETS: &[&str] = &[
    "High Street",
    "Church Road",
    "Station Road",
    "Park Lane",
    "Victoria Road",
    "Green Lane",
    "Manor Road",
    "Mill Lane",
    "The Grove",
    "Kingsway",
    "Queens Road",
    "London Road",
];

pub const FIRST_NAMES: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophia", "Lily", "Freya", "Emily", "Priya", "Aisha", "Fatima",
    "Chloe", "Hannah", "Zara", "Noah", "Oliver", "George", "Arthur", "Muhammad", "Leo", "Harry", "Oscar", "Jack",
    "Charlie", "Thomas", "James", "Kwame", "Ravi", "Daniel", "Samuel", "Joseph", "David", "Adam", "Ethan",
];

pub const SURNAMES: &[&str] = &[
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson", "Roberts",
    "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes", "Green", "Hall", "Patel", "Khan",
    "Ahmed", "Begum", "Singh", "Okafor", "Mensah", "Nowak", "Kowalski", "Murphy", "O'Brien", "Campbell", "Stewart",
];

/// NHS Electronic Staff Record staff groups, with rough shares of the workforce.
pub const STAFF_GROUPS: &[(&str, u32)] = &[
    ("Nursing and Midwifery Registered", 26),
    ("Additional Clinical Services", 22),
    ("Administrative and Clerical", 21),
    ("Medical and Dental", 10),
    ("Allied Health Professionals", 8),
    ("Estates and Ancillary", 6),
    ("Additional Professional Scientific and Technical", 4),
    ("Healthcare Scientists", 2),
    ("Students", 1),
];

/// e-LfH programmes: (slug, title, sessions' topics).
pub const ELFH_PROGRAMMES: &[(&str, &str, &[&str])] = &[
    (
        "statutory-mandatory",
        "Statutory and Mandatory Training",
        &[
            "Fire Safety",
            "Moving and Handling",
            "Conflict Resolution",
            "Health, Safety and Welfare",
            "Equality, Diversity and Human Rights",
        ],
    ),
    (
        "safeguarding",
        "Safeguarding",
        &[
            "Safeguarding Adults Level 1",
            "Safeguarding Adults Level 2",
            "Safeguarding Children Level 1",
            "Safeguarding Children Level 2",
            "Prevent Awareness",
        ],
    ),
    (
        "genomics",
        "Genomics Education Programme",
        &[
            "Introduction to Genomics",
            "Consent for Genomic Testing",
            "Pharmacogenomics",
            "Rare Disease Diagnosis",
            "Cancer Genomics",
        ],
    ),
    (
        "end-of-life-care",
        "End of Life Care for All",
        &["Advance Care Planning", "Assessment", "Communication Skills", "Symptom Management", "Bereavement"],
    ),
    (
        "infection-prevention",
        "Infection Prevention and Control",
        &["Hand Hygiene", "Personal Protective Equipment", "Sepsis Awareness", "Antimicrobial Resistance"],
    ),
    (
        "dementia",
        "Dementia Awareness",
        &["Understanding Dementia", "Person-centred Care", "Communication and Dementia", "Supporting Carers"],
    ),
    (
        "data-security",
        "Data Security Awareness",
        &["Data Security Level 1", "Information Governance", "Cyber Security Basics"],
    ),
    (
        "medicines",
        "Medicines Management",
        &["Safe Administration", "Controlled Drugs", "Medication Errors", "Deprescribing"],
    ),
    (
        "mental-health",
        "Mental Health Awareness",
        &["Suicide Prevention", "Self-harm", "Eating Disorders", "Perinatal Mental Health"],
    ),
    ("clinical-imaging", "Clinical Imaging", &["Chest X-ray Interpretation", "Radiation Protection", "MRI Safety"]),
];

/// MOOCs: (slug, title, step topics).
pub const MOOC_COURSES: &[(&str, &str, &[&str])] = &[
    (
        "digital-health",
        "Digital Health and Care",
        &[
            "What is digital health?",
            "Electronic patient records",
            "Telehealth in practice",
            "Apps and wearables",
            "Data and decisions",
            "Digital inclusion",
        ],
    ),
    (
        "leadership-compassion",
        "Compassionate Leadership",
        &[
            "What compassion means",
            "Listening with fascination",
            "Empathy at work",
            "Helping teams thrive",
            "Reflecting on practice",
        ],
    ),
    (
        "ai-in-healthcare",
        "Artificial Intelligence in Healthcare",
        &[
            "What AI can and cannot do",
            "Machine learning basics",
            "Bias and fairness",
            "Regulating AI",
            "AI at the bedside",
            "Your next steps",
        ],
    ),
    (
        "quality-improvement",
        "Quality Improvement Essentials",
        &["Why improve?", "The model for improvement", "PDSA cycles", "Measuring for improvement", "Spreading change"],
    ),
    (
        "population-health",
        "Population Health Management",
        &["Health inequalities", "Segmenting populations", "Anticipatory care", "Working across systems"],
    ),
    (
        "sustainability",
        "Sustainable Healthcare",
        &["Climate and health", "Greener theatres", "Low-carbon prescribing", "Sustainable travel"],
    ),
];

/// Magpie resource kinds: (slug, activity type, words in titles).
pub const MAGPIE_KINDS: &[(&str, &str)] = &[
    ("article", "http://activitystrea.ms/schema/1.0/article"),
    ("podcast", "http://id.tincanapi.com/activitytype/podcast"),
    ("video", "https://w3id.org/xapi/video/activity-type/video"),
    ("guideline", "http://id.tincanapi.com/activitytype/document"),
    ("case-study", "http://adlnet.gov/expapi/activities/media"),
];

pub const MAGPIE_TOPICS: &[&str] = &[
    "Recognising deterioration",
    "Delirium in older people",
    "Pressure ulcer prevention",
    "Falls prevention",
    "Managing diabetes in hospital",
    "Oral health in care homes",
    "Long COVID",
    "Menopause at work",
    "Frailty assessment",
    "Anaphylaxis",
    "Acute kidney injury",
    "Nutrition and hydration",
    "Chronic pain",
    "Wound care",
    "Asthma in children",
    "Heart failure",
    "Stroke rehabilitation",
    "Learning disabilities",
    "Autism awareness",
    "Trauma-informed care",
    "Social prescribing",
    "Health literacy",
];

pub const COMMENTS: &[&str] = &[
    "Really useful overview, thank you.",
    "The case study made this much clearer for me.",
    "Could the slides be made available to download?",
    "We use a similar approach on our ward and it works well.",
    "I found the second video hard to follow without captions.",
    "Great to see examples from primary care as well as hospitals.",
    "This will change how I document handovers.",
    "Does anyone have tips for applying this in community settings?",
];

/// Sentences long comments and long descriptions are made of.
pub const LONG_TEXT: &[&str] = &[
    "In our trust we have been piloting this for six months across two medical wards and one community team.",
    "The biggest change was giving staff protected time to reflect after each shift rather than at the end of the month.",
    "Patients and carers told us that they felt more involved in decisions when the plan was written down with them.",
    "We found that the electronic record needed a few small changes before the approach could be used consistently.",
    "Senior sponsorship mattered: without it the project stalled whenever the wards were under winter pressure.",
    "It would be helpful if the course included more on how to measure the effect of changes over a longer period.",
    "Several colleagues from the emergency department asked whether a shorter version could be made for induction.",
    "Overall this was one of the most practical courses I have completed this year and I will share it with my team.",
];
