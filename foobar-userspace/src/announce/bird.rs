//! BIRD 2's control socket, spoken as birdc speaks it: one command line in; reply lines out,
//! each starting with a four-digit code followed by `-` while more lines follow and by a space
//! on the last (lines starting with a space continue the previous one). Codes 0xxx say done,
//! 8xxx and 9xxx refused (doc/reply_codes in BIRD's sources).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

/// How long BIRD may take to greet and to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Why a command did not get through.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error("BIRD's control socket {path}: {source}")]
    Unreachable { path: String, source: std::io::Error },
    #[error("BIRD refused `{command}`: {code} {text}")]
    Refused { command: String, code: u16, text: String },
    #[error("BIRD's answer to `{command}` is not its reply format: {line:?}")]
    Garbled { command: String, line: String },
}

/// BIRD's final reply to a command: its code and the text of every line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// Sends `command` (one line, no newline) over the control socket at `path`.
pub fn command(path: &Path, command: &str) -> Result<Reply, BirdError> {
    let unreachable = |source| BirdError::Unreachable { path: path.display().to_string(), source };
    let stream = UnixStream::connect(path).map_err(unreachable)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(unreachable)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(unreachable)?);
    let failed = |what: &str, e| match e {
        ReadError::Io(source) => BirdError::Unreachable { path: path.display().to_string(), source },
        ReadError::Garbled(line) => BirdError::Garbled { command: what.to_owned(), line },
    };
    read_reply(&mut reader).map_err(|e| failed("(greeting)", e))?;
    (&stream).write_all(format!("{command}\n").as_bytes()).map_err(unreachable)?;
    let reply = read_reply(&mut reader).map_err(|e| failed(command, e))?;
    if reply.code >= 8000 {
        return Err(BirdError::Refused { command: command.to_owned(), code: reply.code, text: reply.text });
    }
    Ok(reply)
}

enum ReadError {
    Io(std::io::Error),
    Garbled(String),
}

/// Reads lines up to and including the last of one reply.
fn read_reply(reader: &mut impl BufRead) -> Result<Reply, ReadError> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(ReadError::Io)? == 0 {
            return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        match parse_line(line) {
            Line::Continued(t) => push(&mut text, t),
            Line::More(_, t) => push(&mut text, t),
            Line::Last(code, t) => {
                push(&mut text, t);
                return Ok(Reply { code, text });
            }
            Line::Garbled => return Err(ReadError::Garbled(line.to_owned())),
        }
    }
}

fn push(text: &mut String, part: &str) {
    if !text.is_empty() && !part.is_empty() {
        text.push_str("; ");
    }
    text.push_str(part.trim());
}

#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// `NNNN-text`: more lines follow.
    More(u16, &'a str),
    /// `NNNN text`: the reply's last line.
    Last(u16, &'a str),
    /// ` text`: the previous line continued.
    Continued(&'a str),
    Garbled,
}

fn parse_line(line: &str) -> Line<'_> {
    if let Some(rest) = line.strip_prefix(' ') {
        return Line::Continued(rest);
    }
    let (Some(code), Some(sep)) = (line.get(..4).and_then(|c| c.parse::<u16>().ok()), line.as_bytes().get(4)) else {
        // A bare code ends a reply too (`0000` after a table).
        return match line.parse::<u16>() {
            Ok(code) if line.len() == 4 => Line::Last(code, ""),
            _ => Line::Garbled,
        };
    };
    match sep {
        b'-' => Line::More(code, &line[5..]),
        b' ' => Line::Last(code, &line[5..]),
        _ => Line::Garbled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(parse_line("0001 BIRD 2.0.12 ready."), Line::Last(1, "BIRD 2.0.12 ready."));
        assert_eq!(parse_line("1002-Name       Proto"), Line::More(1002, "Name       Proto"));
        assert_eq!(parse_line(" www_vip    Static"), Line::Continued("www_vip    Static"));
        assert_eq!(parse_line("0000"), Line::Last(0, ""));
        assert_eq!(parse_line("hello"), Line::Garbled);
        let mut reader = std::io::Cursor::new("1002-Name Proto\n www_vip Static up\n0000 \n");
        assert!(matches!(read_reply(&mut reader), Ok(Reply { code: 0, .. })));
    }
}
