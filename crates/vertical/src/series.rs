//! Usage series of one workload, read from the development traces' CSV text.
//!
//! A line is `;`-separated (a tab may follow each `;`): timestamp in unix seconds, provisioned
//! cores, provisioned CPU in MHz, CPU used in MHz, CPU used in percent, provisioned memory in
//! KiB, memory used in KiB, then disk and network columns that are not read. The first line is a
//! header. Several rows at one instant keep the one with the largest provisioned capacity; rows
//! with nothing provisioned carry no usage in cores and are dropped.

use crate::error::Error;

/// One usage sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix seconds.
    pub at: i64,
    /// CPU used, cores.
    pub cpu: f64,
    /// Memory used, bytes.
    pub memory: f64,
    /// Cores provisioned.
    pub cores: f64,
}

/// The samples of one workload, oldest first, one per instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// Reads the CSV `text` of the series `name` (used in errors as the file name).
pub fn parse(name: &str, text: &str) -> Result<Series, Error> {
    let err = |line: usize, why: String| Error::Series {
        file: name.to_string(),
        line,
        why,
    };
    let mut rows: Vec<(Point, f64)> = Vec::new();
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.starts_with("Timestamp") => {}
        Some((_, header)) => {
            return Err(err(
                1,
                format!(
                    "expected a header starting with \"Timestamp\", found {:?}",
                    truncate(header)
                ),
            ));
        }
        None => return Err(err(1, "the file is empty".into())),
    }
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(';').map(str::trim).collect();
        if fields.len() < 7 {
            return Err(err(
                index + 1,
                format!("expected at least 7 fields, found {}", fields.len()),
            ));
        }
        let number = |i: usize, what: &str| -> Result<f64, Error> {
            fields[i]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    err(
                        index + 1,
                        format!(
                            "{what} {:?} is not a non-negative number",
                            truncate(fields[i])
                        ),
                    )
                })
        };
        let at = number(0, "timestamp")?;
        let cores = number(1, "CPU cores")?;
        let capacity = number(2, "CPU capacity")?;
        let used_mhz = number(3, "CPU usage")?;
        let memory_kib = number(6, "memory usage")?;
        if cores <= 0.0 || capacity <= 0.0 {
            continue;
        }
        let point = Point {
            at: at as i64,
            cpu: used_mhz / (capacity / cores),
            memory: memory_kib * 1024.0,
            cores,
        };
        rows.push((point, capacity));
    }
    // one row per instant: the largest provisioned capacity, then the first in the file
    rows.sort_by(|a, b| a.0.at.cmp(&b.0.at).then(b.1.total_cmp(&a.1)));
    rows.dedup_by_key(|r| r.0.at);
    Ok(Series {
        name: name.to_string(),
        points: rows.into_iter().map(|r| r.0).collect(),
    })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s];\tDisk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork transmitted throughput [KB/s]\n";

    #[test]
    fn reads_rows_and_keeps_one_per_instant() {
        let text = format!(
            "{HEADER}600;\t2;\t5000;\t1250;\t25;\t1048576;\t524288;\t0;\t0;\t0;\t0\n300;\t2;\t5000;\t2500;\t50;\t1048576;\t262144;\t0;\t0;\t0;\t0\n300;\t0;\t0;\t0;\t0;\t0;\t0;\t0;\t0;\t0;\t0\n"
        );
        let s = parse("1.csv", &text).unwrap();
        assert_eq!(s.points.len(), 2);
        assert_eq!(
            s.points[0],
            Point {
                at: 300,
                cpu: 1.0,
                memory: 262144.0 * 1024.0,
                cores: 2.0
            }
        );
        assert_eq!(s.points[1].cpu, 0.5);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let text =
            format!("{HEADER}300;\t2;\t5000;\t1250;\t25;\t1;\t1\n600;\t2;\tlots;\t1;\t1;\t1;\t1\n");
        let e = parse("7.csv", &text).unwrap_err().to_string();
        assert!(e.starts_with("7.csv:3: CPU capacity \"lots\""), "{e}");
        let e = parse("7.csv", "300;1;2").unwrap_err().to_string();
        assert!(e.starts_with("7.csv:1: expected a header"), "{e}");
        let e = parse("7.csv", &format!("{HEADER}1;2;3\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "7.csv:2: expected at least 7 fields, found 3");
    }
}
