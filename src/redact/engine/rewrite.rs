//! The rewrite: merges a line's findings and writes each one's
//! replacement (label, pseudonym, mask or nothing) into the output buffer.

use super::{Action, Engine, Scratch};

impl Engine {
    pub(super) fn rewrite(&self, hay: &[u8], s: &mut Scratch) {
        let Scratch {
            main,
            out,
            norm,
            counts,
            ..
        } = s;
        let f = &mut main.findings;
        f.sort_unstable_by_key(|x| (x.start, std::cmp::Reverse(x.end)));
        out.clear();
        out.reserve(hay.len() + 16);
        let mut pos = 0;
        let mut k = 0;
        while k < f.len() {
            // Merge every finding that overlaps this one; the strongest,
            // then the longest, names the replacement.
            let mut cur = f[k];
            let mut end = cur.end;
            let mut quote = cur.quote;
            k += 1;
            while k < f.len() && f[k].start < end {
                let o = f[k];
                if (o.strength, o.end - o.start) > (cur.strength, cur.end - cur.start) {
                    cur = o;
                }
                end = end.max(o.end);
                quote |= o.quote;
                k += 1;
            }
            let start = f[..k]
                .iter()
                .rev()
                .take_while(|x| x.end > pos)
                .map(|x| x.start)
                .min()
                .unwrap_or(cur.start)
                .max(pos);
            out.extend_from_slice(&hay[pos..start]);
            self.write_replacement(cur.rule, &hay[start..end], quote, out, norm);
            counts[cur.rule as usize] += 1;
            pos = end;
        }
        out.extend_from_slice(&hay[pos..]);
    }

    pub(super) fn write_replacement(
        &self,
        rule: u32,
        value: &[u8],
        quote: bool,
        out: &mut Vec<u8>,
        norm: &mut Vec<u8>,
    ) {
        let r = &self.rules[rule as usize];
        if quote {
            out.push(b'"');
        }
        match r.action {
            Action::Label => {
                out.extend_from_slice(b"[REDACTED:");
                out.extend_from_slice(r.category.tag().as_bytes());
                out.push(b']');
            }
            Action::Pseudonym => {
                // Normalise so that "John Smith" and "JOHN  SMITH", or
                // "415-555-0132" and "(415) 555 0132", give one token.
                norm.clear();
                norm.extend(
                    value
                        .iter()
                        .filter(|b| b.is_ascii_alphanumeric() || **b >= 0x80)
                        .map(u8::to_ascii_uppercase),
                );
                let tag = r.category.tag();
                out.push(b'[');
                out.extend_from_slice(tag.as_bytes());
                out.push(b':');
                out.extend_from_slice(&self.key.token(tag, norm));
                out.push(b']');
            }
            Action::Mask { keep_last } => {
                let total = value.iter().filter(|b| b.is_ascii_alphanumeric()).count();
                let mut seen = 0;
                for &b in value {
                    if b.is_ascii_alphanumeric() {
                        seen += 1;
                        out.push(if total - seen < keep_last { b } else { b'*' });
                    } else if b < 0x80 {
                        out.push(b);
                    } else {
                        out.push(b'*');
                    }
                }
            }
            Action::DropField => {}
        }
        if quote {
            out.push(b'"');
        }
    }
}
