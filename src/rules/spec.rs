//! The YAML schema of rule files, as operators write them.
//!
//! Every struct denies unknown fields, so a misspelt key is an error that names
//! the file and line rather than a rule that silently does nothing.

use serde::Deserialize;

/// A rule file: a list of rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFileSpec {
    /// The rules in this file, evaluated together with every other file.
    pub rules: Vec<RuleSpec>,
}

/// One rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A unique, stable id such as `ssn.formatted`. It appears in metrics and
    /// in `scrubs rules` output, never the matched value.
    pub id: String,
    /// What the rule finds, for people reading the rule pack.
    #[serde(default)]
    pub description: String,
    /// The Safe Harbor identifier, `diagnosis` or `clinical_text`.
    pub category: String,
    /// How candidates are found.
    pub detector: DetectorSpec,
    /// A check that a candidate really is an identifier (checksum, ranges).
    #[serde(default)]
    pub validator: Option<String>,
    /// Words that must appear near a candidate for it to count.
    #[serde(default)]
    pub context: Option<ContextSpec>,
    /// Keys whose values are never this rule's finding: the value of
    /// `trace_id` is not a card number, the value of `component` is not a
    /// person. A key matches when its normalised form ends with one of
    /// these (`dd.trace_id` ends with `traceid`). Findings made by a key
    /// rule are not affected.
    #[serde(default)]
    pub exclude_keys: Vec<String>,
    /// What replaces a match. Defaults to a category label.
    #[serde(default)]
    pub action: Option<ActionSpec>,
    /// Strings the rule must redact and strings that must survive.
    #[serde(default)]
    pub examples: Option<ExamplesSpec>,
}

/// Exactly one detector kind per rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    /// Regular expressions over the bytes of the line (ASCII classes: `\d`
    /// and `\w` are ASCII). All regex rules run in one multi-pattern pass. A
    /// group named `value` limits the redaction to that group, so
    /// `/patients/(?P<value>\d+)` keeps the path and hides the number.
    #[serde(default)]
    pub regex: Option<OneOrMany>,
    /// Case-insensitive literals. The regex pass only runs on lines that
    /// contain one of them, which keeps rare patterns off the hot path.
    #[serde(default)]
    pub requires: Option<Vec<String>>,
    /// Literal words or phrases, matched case-insensitively on word boundaries.
    #[serde(default)]
    pub keywords: Option<Vec<String>>,
    /// A file of keywords, one per line, relative to the rule file.
    #[serde(default)]
    pub dictionary: Option<String>,
    /// Structured keys whose whole value is redacted. Keys are normalised:
    /// `patientName`, `patient_name`, `patient.name` and `PATIENT-NAME` are
    /// the same key.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
    /// Words of a structured key: a key whose words (split at `_`, `-`,
    /// `.` and camelCase) include every word of an entry names this rule.
    /// `"photo"` matches `id_photo_url`; `"participant name"` matches
    /// `participantName`. Used with or instead of `keys`.
    #[serde(default)]
    pub key_words: Option<Vec<String>>,
    /// Numbers found by the digit-run scanner.
    #[serde(default)]
    pub numeric: Option<NumericSpec>,
    /// Mixed letter-and-digit tokens matched whole by a pattern.
    #[serde(default)]
    pub token: Option<TokenSpec>,
    /// Person names from dictionaries, capitalisation and context.
    #[serde(default)]
    pub names: Option<NamesSpec>,
    /// Street addresses in free text: a house number, words and a street
    /// suffix from a list, then a unit, city, state and ZIP.
    #[serde(default)]
    pub address: Option<AddressSpec>,
    /// IPv6 addresses, full (eight groups) or compressed (`::`), anywhere
    /// in the line; `ipv6: {}`. A validator (`public_ip`) decides which.
    #[serde(default)]
    pub ipv6: Option<Ipv6Spec>,
    /// Human messages about health: values of text keys and transcript
    /// utterances that read as a person writing about symptoms or medicines.
    #[serde(default)]
    pub prose: Option<ProseSpec>,
}

/// The IPv6 detector has no settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipv6Spec {}

/// The street-address detector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressSpec {
    /// A file of street suffixes (`STREET`, `ST`, `CROSSING`), one per line,
    /// relative to the rule file.
    pub suffixes: String,
}

/// The clinical-message detector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProseSpec {
    /// Files of health words and phrases (symptoms, medicines, clinical
    /// shorthand), one per line, relative to the rule file.
    pub terms: Vec<String>,
    /// Keys whose value is read as a message (`text`, `body`, `message`):
    /// redacted whole when it reads as a person's health message. Matched
    /// whole or by the key's last word.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Read `[hh:mm:ss] Speaker: words` lines (chat exports, visit
    /// transcripts) and redact each utterance that is more than a word.
    #[serde(default)]
    pub transcripts: bool,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Numeric shapes, such as `ddd-dd-dddd` (`d` is a digit, `d{n}` or `d{m,n}`
/// a run, other characters literal), or a digit count in any grouping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericSpec {
    /// Exact shapes.
    #[serde(default)]
    pub shapes: Vec<String>,
    /// `[min, max]` digits in any grouping of `-`, `.`, `/` or space.
    #[serde(default)]
    pub digits: Option<[usize; 2]>,
    /// With `digits`: the number must start with this character (`+`).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// A token of letters and digits (with `.`, `-` or `_` inside) that contains
/// at least one letter and one digit, matched whole by `pattern`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// An anchored pattern the whole token must match.
    pub pattern: String,
}

/// The person-name detector and its dictionaries (paths relative to the file).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamesSpec {
    /// Given names, one per line, upper-case ASCII.
    pub first: String,
    /// Surnames, one per line, upper-case ASCII.
    pub last: String,
    /// Names that are also ordinary words (May, Will, Long): never a name on
    /// their own, only with context.
    #[serde(default)]
    pub ambiguous: Option<String>,
    /// Common English words, lower-case: a capitalised word from this list
    /// does not extend a name ("Kafka Consumer" is not a person).
    #[serde(default)]
    pub english: Option<String>,
    /// Words after which capitalised words are a name, dictionary or not
    /// (`patient`, `Dr.`, `Mrs.`).
    #[serde(default)]
    pub titles: Vec<String>,
    /// Words after which one given name from the dictionary, alone, is a
    /// name (`for`, `by`, `with`, `called`): weaker than a title.
    #[serde(default)]
    pub cues: Vec<String>,
    /// Scripts whose words are names wherever they occur (`han`, `hangul`,
    /// `kana`, `arabic`, `cyrillic`, `devanagari`, ...): operational log
    /// text is ASCII, so a word in one of these comes from a person.
    #[serde(default)]
    pub scripts: Vec<String>,
    /// Keys whose value is a name when it looks like one (`name`, `display`,
    /// `first`, `from`, `prescriber`): capitalised words of letters, at
    /// least one not an ordinary English word. `service.name=checkout` and
    /// `patient=pat_8f3a` stay. A key matches by its whole normalised form
    /// or by its last word (`patient.first`, `display_name`).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// Context words and how far from the candidate they may be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSpec {
    /// Case-insensitive words or phrases, matched on word boundaries.
    pub words: Vec<String>,
    /// Maximum distance in bytes between a word and the candidate.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Where the word may be: `before` the candidate (the usual form,
    /// "DOB: 03/04/1985"), `after` it, or `either` (the default).
    #[serde(default)]
    pub side: ContextSide,
}

/// Which side of a candidate a context word may be on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextSide {
    Before,
    After,
    #[default]
    Either,
}

fn default_window() -> usize {
    32
}

/// What replaces a match: `label`, `pseudonym`, `drop_field`, or
/// `{mask: {keep_last: N}}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ActionSpec {
    Simple(SimpleAction),
    Mask { mask: MaskSpec },
}

/// The actions that take no parameter.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum SimpleAction {
    /// `[REDACTED:CATEGORY]`.
    Label,
    /// `[CATEGORY:hmac8]`, a keyed HMAC-SHA256 token.
    Pseudonym,
    /// The whole field is emptied (structured) or the match removed (text).
    DropField,
}

/// Letters and digits replaced by `*` except the last `keep_last`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    pub keep_last: usize,
}

/// Examples: a unit test for configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamplesSpec {
    /// Inputs this rule must redact.
    #[serde(default)]
    pub redact: Vec<ExampleSpec>,
    /// Inputs the whole rule set must leave untouched.
    #[serde(default)]
    pub keep: Vec<String>,
}

/// A redact example: the input alone, or the input and its exact output.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ExampleSpec {
    Input(String),
    Exact { input: String, output: String },
}
