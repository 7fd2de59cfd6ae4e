//! Competency frameworks: which competencies exist, and which statements are
//! evidence for them. The file format is described by
//! `schemas/competency-frameworks.schema.json`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::facts::{COMPLETED, PASSED};

const SCHEMA: &str = include_str!("../../../schemas/competency-frameworks.schema.json");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkFile {
    pub frameworks: Vec<Framework>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Framework {
    pub id: String,
    pub name: String,
    pub competencies: Vec<Competency>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Competency {
    /// The competency's IRI.
    pub id: String,
    pub name: String,
    pub domain: String,
}

/// Maps activities to competencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_type: Option<String>,
    /// Verbs whose statements achieve the competencies (default completed
    /// and passed); other verbs are evidence of progress only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbs: Option<Vec<String>>,
    /// Minimum `result.score.scaled` for an achieving statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_scaled: Option<f64>,
    pub competencies: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameworkError {
    #[error("the competency framework file is not valid JSON: {0}")]
    NotJson(String),
    #[error("the competency framework file does not match its schema at {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("rule {rule} of framework {framework} names unknown competency {competency}")]
    UnknownCompetency { framework: String, rule: usize, competency: String },
    #[error("the competency framework schema does not compile: {0}")]
    Schema(String),
}

/// One competency a statement is evidence for, and whether it achieves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub competency: String,
    pub achieves: bool,
}

/// What a statement tells the matcher.
pub struct EvidenceInput<'a> {
    pub verb: &'a str,
    pub activity_id: Option<&'a str>,
    pub activity_type: Option<&'a str>,
    pub scaled: Option<f64>,
    pub context_activity_ids: &'a [String],
}

/// The loaded frameworks, indexed for matching.
#[derive(Debug, Clone, Default)]
pub struct Frameworks {
    file: Option<FrameworkFile>,
    /// Competency IRI → (framework id, competency).
    competencies: HashMap<String, (String, Competency)>,
    rules: Vec<Rule>,
    digest: String,
}

fn default_achieves(verb: &str) -> bool {
    verb == COMPLETED || verb == PASSED
}

impl Frameworks {
    /// No frameworks: no competency is ever evidenced.
    pub fn empty() -> Self {
        Self { digest: "none".to_owned(), ..Self::default() }
    }

    /// Parses and checks a framework file.
    pub fn parse(text: &str) -> Result<Self, FrameworkError> {
        let value: Value = serde_json::from_str(text).map_err(|e| FrameworkError::NotJson(e.to_string()))?;
        let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| FrameworkError::Schema(e.to_string()))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| FrameworkError::Schema(e.to_string()))?;
        if let Some(error) = validator.iter_errors(&value).next() {
            return Err(FrameworkError::Invalid {
                path: error.instance_path().to_string(),
                message: error.to_string(),
            });
        }
        let file: FrameworkFile = serde_json::from_value(value).map_err(|e| FrameworkError::NotJson(e.to_string()))?;
        let mut competencies = HashMap::new();
        let mut rules = Vec::new();
        for framework in &file.frameworks {
            for competency in &framework.competencies {
                competencies.insert(competency.id.clone(), (framework.id.clone(), competency.clone()));
            }
        }
        for framework in &file.frameworks {
            for (index, rule) in framework.rules.iter().enumerate() {
                if let Some(unknown) = rule.competencies.iter().find(|c| !competencies.contains_key(*c)) {
                    return Err(FrameworkError::UnknownCompetency {
                        framework: framework.id.clone(),
                        rule: index,
                        competency: unknown.clone(),
                    });
                }
                rules.push(rule.clone());
            }
        }
        let digest = hex::encode(Sha256::digest(serde_json::to_vec(&file).unwrap_or_default()));
        Ok(Self { file: Some(file), competencies, rules, digest })
    }

    /// Identifies the content: the views are rebuilt when it changes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn file(&self) -> Option<&FrameworkFile> {
        self.file.as_ref()
    }

    pub fn competency(&self, id: &str) -> Option<&(String, Competency)> {
        self.competencies.get(id)
    }

    /// Every competency a statement is evidence for.
    pub fn evidence(&self, input: &EvidenceInput<'_>) -> Vec<Evidence> {
        let mut found: Vec<Evidence> = Vec::new();
        let mut add = |competency: &str, achieves: bool| match found.iter_mut().find(|e| e.competency == competency) {
            Some(existing) => existing.achieves |= achieves,
            None => found.push(Evidence { competency: competency.to_owned(), achieves }),
        };
        for rule in &self.rules {
            let by_id = rule.activity_id.as_deref().is_some_and(|id| Some(id) == input.activity_id);
            let by_prefix = rule
                .activity_id_prefix
                .as_deref()
                .is_some_and(|p| input.activity_id.is_some_and(|id| id.starts_with(p)));
            let by_type = rule.activity_type.as_deref().is_some_and(|t| Some(t) == input.activity_type);
            if !(by_id || by_prefix || by_type) {
                continue;
            }
            let verb_counts = match &rule.verbs {
                Some(verbs) => verbs.iter().any(|v| v == input.verb),
                None => default_achieves(input.verb),
            };
            let score_ok = rule.min_scaled.is_none_or(|min| input.scaled.is_some_and(|s| s >= min));
            for competency in &rule.competencies {
                add(competency, verb_counts && score_ok);
            }
        }
        for id in input.context_activity_ids {
            if self.competencies.contains_key(id) {
                add(id, default_achieves(input.verb));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../schemas/examples/competency-frameworks.json");

    #[test]
    fn the_shipped_example_loads() {
        let frameworks = Frameworks::parse(EXAMPLE).unwrap();
        assert!(frameworks.file().unwrap().frameworks.len() >= 2);
    }

    #[test]
    fn rules_match_by_id_prefix_type_and_context() {
        let text = r#"{"frameworks": [{"id": "https://f", "name": "F",
            "competencies": [{"id": "https://f/c1", "name": "C1", "domain": "D"}, {"id": "https://f/c2", "name": "C2", "domain": "D"}],
            "rules": [{"activityIdPrefix": "https://courses/gen", "minScaled": 0.8, "competencies": ["https://f/c1"]}]}]}"#;
        let frameworks = Frameworks::parse(text).unwrap();
        let context = vec!["https://f/c2".to_owned()];
        let input = |verb, scaled| EvidenceInput {
            verb,
            activity_id: Some("https://courses/genomics-1"),
            activity_type: None,
            scaled,
            context_activity_ids: &context,
        };
        let passed = frameworks.evidence(&input(PASSED, Some(0.9)));
        assert_eq!(
            passed,
            vec![
                Evidence { competency: "https://f/c1".into(), achieves: true },
                Evidence { competency: "https://f/c2".into(), achieves: true },
            ]
        );
        let low = frameworks.evidence(&input(PASSED, Some(0.5)));
        assert!(!low[0].achieves, "below the minimum score only shows progress");
        let launched = frameworks.evidence(&input("http://adlnet.gov/expapi/verbs/launched", None));
        assert!(launched.iter().all(|e| !e.achieves));
    }

    #[test]
    fn a_rule_naming_an_unknown_competency_is_refused() {
        let text = r#"{"frameworks": [{"id": "https://f", "name": "F", "competencies": [],
            "rules": [{"activityId": "https://a", "competencies": ["https://f/missing"]}]}]}"#;
        assert!(matches!(Frameworks::parse(text), Err(FrameworkError::UnknownCompetency { .. })));
    }
}
