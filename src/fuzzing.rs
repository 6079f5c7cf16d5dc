//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz, libFuzzer), and
//! the replay of their committed corpora in `cargo test` on stable.
//!
//! Each function takes raw bytes as a client or an operator could send them,
//! runs the code that reads such input, and checks what must hold of the
//! result. A panic is a finding. Not part of the API: hidden from the docs,
//! free to change.

use std::path::Path;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use serde_json::{Map, Value};

use crate::catalog::{
    ArgumentSpec, ArgumentType, Catalog, CatalogError, CatalogFile, PluginSpec, RelativePath,
};

/// What a target calls with each input.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder in `fuzz/corpus/`.
pub const TARGETS: [(&str, Target); 6] = [
    ("plugins_yml", plugins_yml),
    ("plugin_data", plugin_data),
    ("upload_form", upload_form),
    ("tool_arguments", tool_arguments),
    ("mcp_peek", mcp_peek),
    ("control_frames", control_frames),
];

/// plugins.yml: read and validated; what is accepted is written back and
/// must read back the same; problems point at lines of the file.
pub fn plugins_yml(data: &[u8]) {
    // plugins.yml is read as UTF-8; other bytes are refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("plugins.yml");
    match CatalogFile::parse(path, text) {
        Ok(file) => {
            let (again, written) = CatalogFile::render(path, file.catalog.clone())
                .unwrap_or_else(|error| panic!("an accepted catalog cannot be written: {error}"));
            assert_eq!(again.catalog, file.catalog);
            let reread = CatalogFile::parse(path, &written).expect("written text reads back");
            assert_eq!(reread.catalog, file.catalog);
        }
        Err(CatalogError::Invalid { problems }) => {
            assert!(!problems.is_empty());
            let last_line = text.lines().count() + 1;
            for problem in problems {
                if let Some(line) = problem.line {
                    assert!((1..=last_line).contains(&line), "{problem}");
                }
                assert!(!problem.message.is_empty());
            }
        }
        Err(other) => panic!("parsing text gave {other}"),
    }
}

/// The admin API's `pluginData` (JSON), placed in the upload folder. The
/// first line is the `?dir=` of the request (none when empty).
pub fn plugin_data(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (dir, json) = match text.split_once('\n') {
        Some((dir, json)) => ((!dir.is_empty()).then_some(dir), json),
        None => (None, text),
    };
    let placed = block_on(crate::http::admin::receive_for_fuzzing(
        Err(json),
        dir,
        Path::new("plugins"),
        Path::new("bucket"),
    ));
    if let Ok(spec) = placed {
        check_placed(spec);
    }
}

/// A whole multipart body of `POST /upload-plugin` (boundary `fuzz`).
pub fn upload_form(data: &[u8]) {
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/upload-plugin")
        .header("content-type", "multipart/form-data; boundary=fuzz")
        .body(Body::from(data.to_vec()))
        .expect("a fixed request");
    let placed = block_on(async {
        let multipart = Multipart::from_request(request, &()).await;
        crate::http::admin::receive_for_fuzzing(
            Ok(multipart),
            None,
            Path::new("plugins"),
            Path::new("bucket"),
        )
        .await
    });
    if let Ok(spec) = placed {
        check_placed(spec);
    }
}

/// An accepted upload lands in the upload folder under a plain `.wasm`
/// name, and its entry can be written to plugins.yml (or is refused as a
/// conflict, never lost in writing).
fn check_placed(spec: PluginSpec) {
    let module = RelativePath::new(&spec.path).expect("a placed path is valid");
    assert!(module.as_path().starts_with("bucket"), "{module}");
    assert!(module.as_path().extension().is_some_and(|e| e == "wasm"));
    let catalog = Catalog {
        about: None,
        plugins: vec![spec],
    };
    match CatalogFile::render(Path::new("plugins.yml"), catalog) {
        Ok(_) | Err(CatalogError::Invalid { .. }) => {}
        Err(other) => panic!("an accepted entry cannot be written: {other}"),
    }
}

/// Tool arguments checked against declared ones. The first byte says how
/// many are declared (up to 7), the next ones their types and whether they
/// are required; the rest is the arguments object as a client sends it.
pub fn tool_arguments(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 8);
    if rest.len() < count {
        return;
    }
    let (kinds, json) = rest.split_at(count);
    let declared: Vec<ArgumentSpec> = kinds
        .iter()
        .enumerate()
        .map(|(i, &byte)| ArgumentSpec {
            name: format!("a{i}"),
            kind: ArgumentType::ALL[usize::from(byte & 0x7f) % ArgumentType::ALL.len()],
            description: None,
            required: byte & 0x80 == 0,
            header: None,
        })
        .collect();
    let Ok(Value::Object(arguments)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    match crate::registry::plugin_input("fuzz", &declared, &arguments) {
        Ok(input) => {
            let input: Map<String, Value> =
                serde_json::from_str(&input).expect("the plugin input is a JSON object");
            for key in arguments.keys() {
                assert!(
                    declared.iter().any(|a| &a.name == key),
                    "`{key}` let through"
                );
            }
            for argument in &declared {
                match input.get(&argument.name) {
                    Some(value) => assert!(argument.kind.accepts(value), "{value}"),
                    None => assert!(
                        !argument.required,
                        "required `{}` is missing",
                        argument.name
                    ),
                }
            }
        }
        Err(message) => assert!(message.starts_with("invalid arguments for `fuzz`")),
    }
}

/// The look at a session-less `/mcp` POST that tells `initialize` apart.
pub fn mcp_peek(data: &[u8]) {
    let opens = crate::http::opens_session(&Bytes::copy_from_slice(data));
    if let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(data)
        && request.get("method").and_then(Value::as_str) == Some("initialize")
    {
        assert!(opens, "an initialize request must open a session");
    }
}

/// What a console sends down the control socket, read as the server reads
/// it: frames one after another until the bytes run out or one is refused.
/// A frame that is read writes back and reads back the same; a length over
/// the limit is refused before anything of that size is buffered.
pub fn control_frames(data: &[u8]) {
    use tokio_util::codec::{Decoder, Encoder};

    use crate::control::protocol::{FrameCodec, FrameError};

    let mut codec = FrameCodec::server();
    let mut buffer = bytes::BytesMut::from(data);
    loop {
        let before = buffer.len();
        match codec.decode(&mut buffer) {
            Ok(Some(frame)) => {
                assert!(
                    buffer.len() < before,
                    "a frame was read without using bytes"
                );
                let mut written = bytes::BytesMut::new();
                codec
                    .encode(frame.clone(), &mut written)
                    .expect("a frame that was read can be written");
                // Written as a server would, read back as a console would: a
                // server's frames may be larger than a console's.
                let again = crate::control::protocol::FrameCodec::console()
                    .decode(&mut written)
                    .expect("a written frame reads back")
                    .expect("a written frame is whole");
                assert_eq!(
                    crate::control::session::kind(&again),
                    crate::control::session::kind(&frame)
                );
                assert!(written.is_empty(), "one frame was written");
            }
            Ok(None) => {
                assert!(
                    buffer.capacity() <= data.len().max(64 * 1024) + 4 + 1024 * 1024,
                    "the buffer grew past what a frame under the limit needs"
                );
                break;
            }
            Err(FrameError::TooLarge { length, limit }) => {
                assert!(length > limit);
                break;
            }
            Err(FrameError::Malformed(_)) => break,
            Err(other) => panic!("decoding bytes in memory gave {other}"),
        }
    }
}

/// Run `future` to its end on a runtime of its own.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime without drivers builds")
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed corpus and regression input of every target, through
    /// the function the target calls: CI keeps checking them, on stable.
    #[test]
    fn the_fuzz_corpora_replay() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        for (target, run) in TARGETS {
            let mut inputs = 0;
            for folder in ["corpus", "regressions"] {
                let Ok(files) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
                    continue;
                };
                for file in files {
                    let path = file.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    let outcome = std::panic::catch_unwind(|| run(&data));
                    assert!(outcome.is_ok(), "{} fails", path.display());
                    inputs += 1;
                }
            }
            assert!(inputs > 0, "no corpus for {target}");
        }
    }
}
