//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`.
//!
//! Run from the repository root:
//!
//! ```sh
//! cargo run --manifest-path fuzz/corpus-gen/Cargo.toml
//! ```
//!
//! The output is deterministic, so re-running it only changes the corpus
//! when this file or the sources it copies (`deploy/examples/app.log`,
//! `rules/hipaa/*.yaml`) change. Input layouts (the leading mode byte of
//! `structured` and `otlp_decode`) are described in `fuzz/README.md`.
//!
//! All identifiers below are synthetic: test SSNs (219-09-9999), 555 phone
//! numbers, example.org addresses, test card numbers, made-up names.

use std::fs;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, summary_data_point, Exemplar, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

/// Log lines beyond `deploy/examples/app.log`: every structure the scanner
/// reads, and bytes that are not text.
const LINES: &[&[u8]] = &[
    br#"{"ts":"2024-03-01T10:15:03Z","level":"info","patientName":"Maria Gonzalez","ssn":"219-09-9999","visit_id":"vis_1"}"#,
    br#"{"event":"intake","patient":{"name":"Juan Perez","dob":"1985-03-14","contact":{"phone":"(415) 555-0132","email":"juan.perez@example.org"}},"tags":["urgent","E11.9"]}"#,
    br#"{"msg":"lookup","ssn":219099999,"mrn":482913,"ok":true,"score":0.97,"notes":null,"diagnoses":[{"code":"E11.9"},{"code":"I10"}]}"#,
    br#"{"msg":"escaped \"quotes\" and \\ backslash \u00e9 \ud83d\ude00","patientName":"Nguy\u1ec5n Th\u1ecb Lan","note":"call 415-555-0132\nback"}"#,
    br#"  {"a":[[[[{"b":{"patientName":"Okafor, Chidi"}}]]]],"c":"x"}  "#,
    br#"{"biometricTemplate":"AAAAQUJD","photoUrl":"https://cdn.example.org/p/1.jpg","level":"warn"}"#,
    br#"{"broken": "json", "ssn": "219-09-9999""#,
    b"level=info msg=\"chart opened\" patient_name=\"Maria Gonzalez\" dob=1985-03-14 mrn=MRN-00482913 duration_ms=12",
    b"ts=2024-03-01T10:15:02Z level=warn ssn=219099999 phone=+1-415-555-0132 email=maria@example.org ip=203.0.113.45",
    b"patient: Dr. Priya Patel, dob: 03/14/1985, phone: (415) 555-0132",
    b"10.0.3.7 - - [01/Mar/2024:10:15:04 +0000] \"GET /api/v1/patients?name=Maria%20Gonzalez&ssn=219-09-9999&page=2 HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"",
    b"GET /search?q=Nguy%E1%BB%85n+Th%E1%BB%8B+Lan&dob=03%2F14%2F1985&email=a%40example.org&x=%ZZ&y=%",
    b"https://portal.example.org/patients/482913/chart?mrn=00482913&returnTo=%2Fhome%3Fa%3D1",
    b"INSERT INTO patients (name, ssn, dob) VALUES ('Maria Gonzalez', '219-09-9999', '1985-03-14'), ('O''Brien', NULL, '1990-01-01')",
    b"UPDATE patients SET phone = '415-555-0132' WHERE mrn = 'MRN-00482913'",
    b"SELECT * FROM visits WHERE patient_name = 'Aur\xc3\xa9lie Lef\xc3\xa8vre' AND dob = DATE '1979-11-02'",
    b"Patient[name=Siddharth Venkataraman, mrn=A-0048291, phone=(415) 555-0132, address=123 Main Street]",
    b"{'name': 'J\xc3\xbcrgen M\xc3\xbcller', 'city': 'Springfield', 'zip': '62704', 'icd': 'E11.9'}",
    b"card 4111 1111 1111 1111 exp 12/27 cvv=123 routing 011000015 account 000123456789",
    b"vin 1HGCM82633A004352 plate 7ABC123 imei 490154203237518 mac 00:1B:44:11:3A:B7",
    b"admitted 2024-02-28, discharged March 3, 2024; DOB: 03/14/1985; died 2024-03-05",
    b"Medicare 1EG4-TE5-MK73 npi=1234567893 dea AB1234563 license D1234567",
    b"client 203.0.113.45 via 10.0.0.1 ipv6 2001:db8::1 host ip-10-0-3-7 Chrome/120.0.0.0",
    b"Kafka Consumer started on pod intake-7d9f8b-xk2p4 version 2.14.1",
    b"Gonzalez, Maria called about her prescription; Mrs. Hope Long will call back",
    b"\xff\xfe\x00binary\x00 ssn=219-09-9999 \xc3\x28 \xe2\x82 end",
    b"\tat com.clinic.intake.Service.enroll(Service.java:88)",
    b"[REDACTED:SSN] [NAME:7f3a9c2e] [REDACTED:PHONE] already scrubbed",
    b"",
    b"=",
    b"a=\"unterminated",
    b"{",
    b"%%%%%",
];

/// Values for the `structured` wrapper modes 4-6 (a value under a key).
const VALUES: &[&[u8]] = &[
    b"Maria Gonzalez",
    b"219-09-9999",
    b"(415) 555-0132",
    b"maria.gonzalez@example.org",
    b"1985-03-14",
    b"123 Main Street, Springfield, IL 62704",
    b"chest pain since Monday, call 415.555.0132",
    b"a \"quoted\" \\ value\nwith a line break",
    b"Nguy\xe1\xbb\x85n Th\xe1\xbb\x8b Lan",
    b"x=1&y=2 %41",
    b"",
];

/// Broken rule files: one problem (or several) each.
const BAD_RULES: &[(&str, &str)] = &[
    ("bad-syntax.yaml", "rules:\n  - id: x\n    category: [ssn\n"),
    ("unknown-key.yaml", "rules:\n  - id: x\n    category: ssn\n    detector: {keywords: [a]}\n    colour: red\n"),
    ("bad-regex.yaml", "rules:\n  - id: broken\n    category: other_identifier\n    detector:\n      regex: 'TCK-(\\d{4'\n"),
    ("empty-regex.yaml", "rules:\n  - id: empty\n    category: other_identifier\n    detector:\n      regex: 'a*'\n"),
    ("huge-regex.yaml", "rules:\n  - id: huge\n    category: other_identifier\n    detector:\n      regex: '(\\w{100}){100}'\n"),
    ("bad-validator.yaml", "rules:\n  - id: x\n    category: ssn\n    detector:\n      numeric: {shapes: [ddddddddd]}\n    validator: crc32\n"),
    ("two-detectors.yaml", "rules:\n  - id: x\n    category: ssn\n    detector:\n      keywords: [a]\n      keys: [b]\n"),
    ("no-detector.yaml", "rules:\n  - id: x\n    category: ssn\n    detector: {}\n"),
    ("bad-category.yaml", "rules:\n  - id: x\n    category: shoe_size\n    detector: {keys: [shoe]}\n"),
    ("bad-id.yaml", "rules:\n  - id: 'has space'\n    category: ssn\n    detector: {keys: [ssn]}\n  - id: ''\n    category: ssn\n    detector: {keys: [ssn2]}\n"),
    ("duplicate-id.yaml", "rules:\n  - id: same\n    category: ssn\n    detector: {keys: [a]}\n  - id: same\n    category: ssn\n    detector: {keys: [b]}\n"),
    ("bad-digits.yaml", "rules:\n  - id: x\n    category: phone\n    detector:\n      numeric: {digits: [12, 3]}\n  - id: y\n    category: phone\n    detector:\n      numeric: {digits: [0, 40]}\n"),
    ("bad-shapes.yaml", "rules:\n  - id: x\n    category: phone\n    detector:\n      numeric: {shapes: ['d{99999999999}', 'd{3,1}', 'd{', '']}\n"),
    ("bad-context.yaml", "rules:\n  - id: x\n    category: ssn\n    detector: {numeric: {shapes: [ddddddddd]}}\n    context: {words: [], window: 0}\n  - id: y\n    category: ssn\n    detector: {numeric: {shapes: [dddd]}}\n    context: {words: [ssn], window: 100000, side: above}\n"),
    ("bad-action.yaml", "rules:\n  - id: x\n    category: ssn\n    detector: {keys: [ssn]}\n    action: {mask: {keep_last: -1}}\n  - id: y\n    category: ssn\n    detector: {keys: [ssn2]}\n    action: shred\n"),
    ("requires-without-regex.yaml", "rules:\n  - id: x\n    category: ssn\n    detector: {keys: [ssn], requires: [ssn]}\n"),
    ("missing-dictionary.yaml", "rules:\n  - id: x\n    category: name\n    detector: {dictionary: no-such-file.txt}\n"),
    ("bad-token.yaml", "rules:\n  - id: x\n    category: medical_record_number\n    detector:\n      token: {pattern: '[A-Z'}\n"),
    ("failing-example.yaml", "rules:\n  - id: x\n    category: ssn\n    detector: {keys: [ssn]}\n    examples:\n      redact: [\"nothing here\", {input: \"ssn=1\", output: \"wrong\"}]\n      keep: [\"ssn=2\"]\n"),
    ("aliases.yaml", "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nrules: [*b, *b]\n"),
    ("not-a-list.yaml", "rules: 7\n"),
    ("empty.yaml", ""),
    ("tabs.yaml", "rules:\n\t- id: x\n"),
];

/// Good rule files written for the fuzzer: every detector and action.
const GOOD_RULES: &[(&str, &str)] = &[
    (
        "readme-example.yaml",
        r#"rules:
  - id: ssn.context
    description: Nine digits, unformatted or spaced, near an SSN word.
    category: ssn
    detector:
      numeric:
        shapes: ["ddddddddd", "ddd dd dddd"]
    validator: ssn
    context:
      words: [ssn, "social security"]
      window: 24
    action: label
    examples:
      redact:
        - "SSN: 219099999"
        - input: "social security 219 09 9999"
          output: "social security [REDACTED:SSN]"
      keep: ["bytes=219099999"]
"#,
    ),
    (
        "every-detector.yaml",
        r#"rules:
  - id: ticket
    category: other_identifier
    detector:
      regex: ['TCK-\d{4}', '/tickets/(?P<value>\d+)']
      requires: ["tck-", "/tickets/"]
    action: {mask: {keep_last: 2}}
  - id: words
    category: diagnosis
    detector: {keywords: [diabetes, "chest pain"]}
  - id: keyed
    category: name
    detector: {keys: [patientName, ptName], key_words: ["participant name"]}
    action: pseudonym
  - id: phones
    category: phone
    detector: {numeric: {digits: [10, 11], prefix: "+"}}
    validator: nanp
    context: {words: [call, phone], window: 16, side: before}
  - id: tokens
    category: medical_record_number
    detector: {token: {pattern: 'MRN-\d{6,8}'}}
  - id: photo
    category: photograph
    detector: {keys: [photo]}
    action: drop_field
"#,
    ),
];

fn write(dir: &Path, name: &str, data: &[u8]) {
    fs::create_dir_all(dir).expect("create corpus dir");
    fs::write(dir.join(name), data).expect("write seed");
}

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(v.to_string())),
    }
}

fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(v),
        key_strindex: 0,
    }
}

fn any(v: Value) -> AnyValue {
    AnyValue { value: Some(v) }
}

/// Attributes of every value type, PHI by key, by value and by structure.
fn attrs() -> Vec<KeyValue> {
    vec![
        kv("patient.name", s("Maria Gonzalez")),
        kv("note", s("SSN 219-09-9999, call (415) 555-0132")),
        kv("http.status_code", any(Value::IntValue(200))),
        kv("patient.ssn", any(Value::IntValue(219_099_999))),
        kv("score", any(Value::DoubleValue(0.97))),
        kv("ok", any(Value::BoolValue(true))),
        kv("blob", any(Value::BytesValue(vec![0, 1, 2, 0xff]))),
        kv(
            "patient",
            any(Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("name", s("Juan Perez")),
                    kv("dob", s("1985-03-14")),
                    kv(
                        "contact",
                        any(Value::KvlistValue(KeyValueList {
                            values: vec![kv("email", s("juan.perez@example.org"))],
                        })),
                    ),
                ],
            })),
        ),
        kv(
            "patientName",
            any(Value::ArrayValue(ArrayValue {
                values: vec![
                    s("Maria Gonzalez"),
                    s("Juan Perez"),
                    any(Value::IntValue(7)),
                ],
            })),
        ),
        kv("biometricTemplate", s("AAAAQUJD")),
        kv("service.name", s("intake")),
    ]
}

/// A value nested `n` key/value lists deep.
fn nested(n: usize) -> AnyValue {
    let mut v = s("Maria Gonzalez");
    for i in 0..n {
        v = if i % 2 == 0 {
            any(Value::KvlistValue(KeyValueList {
                values: vec![kv("patient", v)],
            }))
        } else {
            any(Value::ArrayValue(ArrayValue { values: vec![v] }))
        };
    }
    v
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", s("intake")),
            kv("host.name", s("ip-10-0-3-7")),
            kv("client.address", s("203.0.113.45")),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "com.clinic.intake".into(),
        version: "2.14.1".into(),
        attributes: vec![kv("owner", s("Dr. Priya Patel"))],
        ..Default::default()
    })
}

const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const SPAN_ID: [u8; 8] = [0xee, 0x19, 0xb7, 0xec, 0x3c, 0x1b, 0x17, 0x4a];

fn logs() -> ExportLogsServiceRequest {
    let records = vec![
        LogRecord {
            time_unix_nano: 1_709_288_102_000_000_000,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(s("lookup failed for SSN 219-09-9999 (Maria Gonzalez)")),
            attributes: attrs(),
            trace_id: TRACE_ID.to_vec(),
            span_id: SPAN_ID.to_vec(),
            event_name: "patient.lookup".into(),
            ..Default::default()
        },
        LogRecord {
            body: Some(any(Value::KvlistValue(KeyValueList { values: attrs() }))),
            ..Default::default()
        },
        LogRecord {
            body: Some(nested(40)),
            ..Default::default()
        },
        LogRecord {
            body: Some(s(r#"{"patientName":"Maria Gonzalez","visit_id":"vis_1"}"#)),
            ..Default::default()
        },
    ];
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: records,
                schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn traces() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        trace_state: "vendor=patient:219099999".into(),
        name: "GET /api/v1/patients?name=Maria%20Gonzalez".into(),
        kind: 2,
        start_time_unix_nano: 1_709_288_102_000_000_000,
        end_time_unix_nano: 1_709_288_102_012_000_000,
        attributes: attrs(),
        events: vec![Event {
            time_unix_nano: 1_709_288_102_001_000_000,
            name: "exception: duplicate email maria@example.org".into(),
            attributes: vec![kv(
                "exception.message",
                s("SSN 219-09-9999 already enrolled"),
            )],
            dropped_attributes_count: 0,
        }],
        links: vec![Link {
            trace_id: TRACE_ID.to_vec(),
            span_id: SPAN_ID.to_vec(),
            trace_state: String::new(),
            attributes: vec![kv("patient.mrn", s("MRN-00482913"))],
            ..Default::default()
        }],
        status: Some(Status {
            message: "patient Maria Gonzalez not found".into(),
            code: 2,
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    let point_attrs = vec![
        kv("patient.mrn", s("MRN-00482913")),
        kv("route", s("/api/v1/patients/{id}")),
    ];
    let exemplars = vec![Exemplar {
        filtered_attributes: vec![kv("user.email", s("maria@example.org"))],
        time_unix_nano: 1_709_288_102_000_000_000,
        span_id: SPAN_ID.to_vec(),
        trace_id: TRACE_ID.to_vec(),
        value: Some(exemplar::Value::AsDouble(12.5)),
    }];
    let number = |v| NumberDataPoint {
        attributes: point_attrs.clone(),
        time_unix_nano: 1_709_288_102_000_000_000,
        exemplars: exemplars.clone(),
        value: Some(v),
        ..Default::default()
    };
    let metrics = vec![
        Metric {
            name: "visits.active".into(),
            description: "Active visits for Dr. Priya Patel".into(),
            unit: "{visit}".into(),
            metadata: vec![kv("owner.phone", s("(415) 555-0132"))],
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![number(number_data_point::Value::AsInt(3))],
            })),
        },
        Metric {
            name: "http.requests".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![number(number_data_point::Value::AsDouble(1.0))],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "http.duration".into(),
            unit: "ms".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: point_attrs.clone(),
                    count: 3,
                    sum: Some(36.0),
                    bucket_counts: vec![1, 2, 0],
                    explicit_bounds: vec![10.0, 100.0],
                    exemplars: exemplars.clone(),
                    min: Some(4.0),
                    max: Some(20.0),
                    ..Default::default()
                }],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        },
        Metric {
            name: "latency.summary".into(),
            data: Some(metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes: point_attrs.clone(),
                    count: 2,
                    sum: 10.0,
                    quantile_values: vec![summary_data_point::ValueAtQuantile {
                        quantile: 0.5,
                        value: 5.0,
                    }],
                    ..Default::default()
                }],
            })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// An `otlp_decode` input: the mode byte, then the body.
fn otlp_seed(signal: u8, json: bool, gzip_here: bool, body: &[u8]) -> Vec<u8> {
    let mode = signal | if json { 4 } else { 0 } | if gzip_here { 1 << 3 } else { 0 };
    let mut out = vec![mode];
    out.extend_from_slice(body);
    out
}

/// OTLP JSON as the specification writes it (ids in hex, 64-bit integers
/// as strings), not as serde writes it, for the JSON decoder's own paths.
const SPEC_JSON_LOGS: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"intake"}}]},"scopeLogs":[{"scope":{"name":"my.library","version":"1.0.0"},"logRecords":[{"timeUnixNano":"1544712660300000000","observedTimeUnixNano":"1544712660300000000","severityNumber":10,"severityText":"Information","traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","body":{"stringValue":"Example log record for Maria Gonzalez, SSN 219-09-9999"},"attributes":[{"key":"string.attribute","value":{"stringValue":"some string"}},{"key":"boolean.attribute","value":{"boolValue":true}},{"key":"int.attribute","value":{"intValue":"10"}},{"key":"double.attribute","value":{"doubleValue":637.704}},{"key":"array.attribute","value":{"arrayValue":{"values":[{"stringValue":"many"},{"stringValue":"values"}]}}},{"key":"map.attribute","value":{"kvlistValue":{"values":[{"key":"patientName","value":{"stringValue":"Juan Perez"}}]}}},{"key":"bytes.attribute","value":{"bytesValue":"AAEC/w=="}}]}]}]}]}"#;

const SPEC_JSON_TRACES: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"intake"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"I'm a server span for patient 219-09-9999","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","kind":2,"attributes":[{"key":"patient.email","value":{"stringValue":"maria@example.org"}}],"status":{"code":2,"message":"no chart for Maria Gonzalez"}}]}]}]}"#;

const SPEC_JSON_METRICS: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"intake"}}]},"scopeMetrics":[{"scope":{"name":"my.library","version":"1.0.0"},"metrics":[{"name":"my.counter","unit":"1","description":"I am a Counter","sum":{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[{"asDouble":5,"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000","attributes":[{"key":"patient.mrn","value":{"stringValue":"MRN-00482913"}}]}]}},{"name":"my.gauge","gauge":{"dataPoints":[{"asInt":"10","timeUnixNano":"1544712660300000000"}]}},{"name":"my.histogram","histogram":{"aggregationTemporality":1,"dataPoints":[{"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000","count":"2","sum":2,"bucketCounts":["1","1"],"explicitBounds":[1],"min":0,"max":2}]}}]}]}]}"#;

fn main() {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let repo = root
        .parent()
        .and_then(Path::parent)
        .expect("corpus path is <repo>/fuzz/corpus")
        .to_path_buf();

    // redact_line and structured mode 0: real lines.
    let app_log = fs::read(repo.join("deploy/examples/app.log")).expect("read app.log");
    let mut lines: Vec<Vec<u8>> = app_log
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    lines.extend(LINES.iter().map(|l| l.to_vec()));
    let line_dir = root.join("redact_line");
    let structured_dir = root.join("structured");
    for (i, line) in lines.iter().enumerate() {
        write(&line_dir, &format!("line-{i:03}"), line);
        let mut seed = vec![0u8];
        seed.extend_from_slice(line);
        write(&structured_dir, &format!("raw-{i:03}"), &seed);
    }
    // structured modes 4-6: a value under a key (byte 1 picks the key).
    for (i, value) in VALUES.iter().enumerate() {
        for mode in 4u8..=6 {
            let mut seed = vec![mode, i as u8 * 3];
            seed.extend_from_slice(value);
            write(&structured_dir, &format!("wrap{mode}-{i:02}"), &seed);
        }
    }
    // structured modes 1-3: a few byte strings for `arbitrary` to start from.
    for mode in 1u8..=3 {
        let mut seed = vec![mode];
        seed.extend((0u8..64).map(|b| b.wrapping_mul(37)));
        write(&structured_dir, &format!("gen{mode}"), &seed);
    }

    // rules_yaml: pack files, README examples and broken files.
    let rules_dir = root.join("rules_yaml");
    for name in [
        "contact.yaml",
        "dates.yaml",
        "financial.yaml",
        "government-ids.yaml",
        "network.yaml",
        "names.yaml",
    ] {
        let text = fs::read(repo.join("rules/hipaa").join(name)).expect("read pack file");
        write(&rules_dir, &format!("hipaa-{name}"), &text);
    }
    for (name, text) in GOOD_RULES.iter().chain(BAD_RULES) {
        write(&rules_dir, name, text.as_bytes());
    }

    // otlp_decode: protobuf and JSON bodies of each signal.
    let otlp_dir = root.join("otlp_decode");
    let bodies: [(u8, &str, Vec<u8>, Vec<u8>); 3] = [
        (
            0,
            "logs",
            logs().encode_to_vec(),
            serde_json::to_vec(&logs()).expect("json"),
        ),
        (
            1,
            "traces",
            traces().encode_to_vec(),
            serde_json::to_vec(&traces()).expect("json"),
        ),
        (
            2,
            "metrics",
            metrics().encode_to_vec(),
            serde_json::to_vec(&metrics()).expect("json"),
        ),
    ];
    for (signal, name, proto, json) in &bodies {
        write(
            &otlp_dir,
            &format!("{name}-proto"),
            &otlp_seed(*signal, false, false, proto),
        );
        write(
            &otlp_dir,
            &format!("{name}-json"),
            &otlp_seed(*signal, true, false, json),
        );
        write(
            &otlp_dir,
            &format!("{name}-proto-gzip"),
            &otlp_seed(*signal, false, true, proto),
        );
        // Truncated bodies: the decoder's error paths.
        write(
            &otlp_dir,
            &format!("{name}-proto-cut"),
            &otlp_seed(*signal, false, false, &proto[..proto.len() / 2]),
        );
        write(
            &otlp_dir,
            &format!("{name}-json-cut"),
            &otlp_seed(*signal, true, false, &json[..json.len() / 2]),
        );
    }
    for (signal, name, json) in [
        (0u8, "logs", SPEC_JSON_LOGS),
        (1, "traces", SPEC_JSON_TRACES),
        (2, "metrics", SPEC_JSON_METRICS),
    ] {
        write(
            &otlp_dir,
            &format!("{name}-spec-json"),
            &otlp_seed(signal, true, false, json.as_bytes()),
        );
        write(
            &otlp_dir,
            &format!("{name}-spec-json-gzip"),
            &otlp_seed(signal, true, true, json.as_bytes()),
        );
    }
    // JSON nested past the receiver's depth check, and a body that is not
    // gzip though it says so.
    let deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
    write(
        &otlp_dir,
        "logs-json-deep",
        &otlp_seed(0, true, false, deep.as_bytes()),
    );
    write(
        &otlp_dir,
        "logs-not-gzip",
        &[2 << 3, 0x1f, 0x8b, 0x08, 0, 1, 2, 3],
    );
    write(&otlp_dir, "empty-proto", &[0]);
    write(&otlp_dir, "empty-json", &[4, b'{', b'}']);
}
