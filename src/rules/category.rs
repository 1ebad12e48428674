//! The categories of protected health information a rule can find.

use std::fmt;

/// The 18 Safe Harbor identifiers of 45 CFR §164.514(b)(2), plus diagnoses
/// and clinical free text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// (A) Names.
    Name,
    /// (B) Geographic subdivisions smaller than a state: street, city, ZIP.
    Geographic,
    /// (C) Elements of dates (except year) related to an individual.
    Date,
    /// (C) Ages over 89, which the rule names with the elements of dates.
    Age,
    /// (D) Telephone numbers.
    Phone,
    /// (E) Fax numbers.
    Fax,
    /// (F) Email addresses.
    Email,
    /// (G) Social Security numbers.
    Ssn,
    /// (H) Medical record numbers.
    MedicalRecordNumber,
    /// (I) Health plan beneficiary numbers.
    HealthPlanNumber,
    /// (J) Account numbers, payment cards included.
    AccountNumber,
    /// (K) Certificate and license numbers.
    LicenseNumber,
    /// (L) Vehicle identifiers and serial numbers, license plates included.
    VehicleIdentifier,
    /// (M) Device identifiers and serial numbers.
    DeviceIdentifier,
    /// (N) Web URLs that identify a person.
    Url,
    /// (O) IP addresses.
    IpAddress,
    /// (P) Biometric identifiers.
    Biometric,
    /// (Q) Full-face photographs and comparable images.
    Photo,
    /// (R) Any other unique identifying number, characteristic or code.
    OtherIdentifier,
    /// Diagnoses: ICD-10 codes and diagnosis text.
    Diagnosis,
    /// Clinical free text: chat messages, notes, assessments.
    ClinicalText,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 21] = [
        Category::Name,
        Category::Geographic,
        Category::Date,
        Category::Age,
        Category::Phone,
        Category::Fax,
        Category::Email,
        Category::Ssn,
        Category::MedicalRecordNumber,
        Category::HealthPlanNumber,
        Category::AccountNumber,
        Category::LicenseNumber,
        Category::VehicleIdentifier,
        Category::DeviceIdentifier,
        Category::Url,
        Category::IpAddress,
        Category::Biometric,
        Category::Photo,
        Category::OtherIdentifier,
        Category::Diagnosis,
        Category::ClinicalText,
    ];

    /// The name used in rule files and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Name => "name",
            Category::Geographic => "geographic",
            Category::Date => "date",
            Category::Age => "age",
            Category::Phone => "phone",
            Category::Fax => "fax",
            Category::Email => "email",
            Category::Ssn => "ssn",
            Category::MedicalRecordNumber => "medical_record_number",
            Category::HealthPlanNumber => "health_plan_number",
            Category::AccountNumber => "account_number",
            Category::LicenseNumber => "license_number",
            Category::VehicleIdentifier => "vehicle_identifier",
            Category::DeviceIdentifier => "device_identifier",
            Category::Url => "url",
            Category::IpAddress => "ip_address",
            Category::Biometric => "biometric",
            Category::Photo => "photo",
            Category::OtherIdentifier => "other_identifier",
            Category::Diagnosis => "diagnosis",
            Category::ClinicalText => "clinical_text",
        }
    }

    /// The short upper-case tag used in replacement text (`[REDACTED:SSN]`).
    pub fn tag(self) -> &'static str {
        match self {
            Category::Name => "NAME",
            Category::Geographic => "LOCATION",
            Category::Date => "DATE",
            Category::Age => "AGE",
            Category::Phone => "PHONE",
            Category::Fax => "FAX",
            Category::Email => "EMAIL",
            Category::Ssn => "SSN",
            Category::MedicalRecordNumber => "MRN",
            Category::HealthPlanNumber => "HEALTH_PLAN_ID",
            Category::AccountNumber => "ACCOUNT",
            Category::LicenseNumber => "LICENSE",
            Category::VehicleIdentifier => "VEHICLE",
            Category::DeviceIdentifier => "DEVICE",
            Category::Url => "URL",
            Category::IpAddress => "IP",
            Category::Biometric => "BIOMETRIC",
            Category::Photo => "PHOTO",
            Category::OtherIdentifier => "ID",
            Category::Diagnosis => "DIAGNOSIS",
            Category::ClinicalText => "CLINICAL_TEXT",
        }
    }

    /// Parses the rule-file name of a category.
    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
