//! The admin REST API: WASImancer's plugin endpoints (`POST /upload-plugin`,
//! `PUT /update-plugin`, `DELETE /remove-plugin/{name}`) with its field names
//! and responses, done safely, plus `GET /plugins` and `POST /reload`. The
//! resource and prompt endpoints are in `admin_definitions`, behind the same
//! token.
//!
//! The token is checked by a layer before any body is read. Uploaded modules
//! land only inside the upload folder, under the path the entry declares,
//! which must be made of plain names ending in `.wasm`. Every change is
//! checked in full before anything is written (see `registry::edits`).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminOptions;
use super::guard::{BearerAuth, require_bearer};
use crate::catalog::{PluginSpec, RelativePath};
use crate::registry::{ChangeError, Edited, OwnsFile, PluginEntry, Registry};

/// Why the admin API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AdminSetupError {
    #[error("the upload folder {} must be inside the plugins folder {} (set UPLOAD_PATH / --upload-dir)", upload.display(), plugins.display())]
    UploadOutsidePlugins { upload: PathBuf, plugins: PathBuf },
    #[error("cannot use the folder {}: {source}", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct AdminState {
    registry: Registry,
    plugins_dir: PathBuf,
    /// The upload folder, relative to the plugins folder (empty: the whole of it).
    upload_folder: PathBuf,
    /// The upload folder, resolved, to decide which files are ours.
    upload_root: PathBuf,
}

/// The admin routes, with `more` routes merged in, behind the admin token.
pub fn routes(
    registry: Registry,
    options: &AdminOptions,
    more: Router,
) -> Result<Router, AdminSetupError> {
    let plugins_dir = registry.runtime_settings().plugins_dir.clone();
    let folder = |path: &Path| -> Result<PathBuf, AdminSetupError> {
        std::fs::create_dir_all(path)
            .and_then(|_| std::fs::canonicalize(path))
            .map_err(|source| AdminSetupError::Folder {
                path: path.to_path_buf(),
                source,
            })
    };
    let plugins_root = folder(&plugins_dir)?;
    let upload_root = folder(&options.upload_dir)?;
    let upload_folder = upload_root
        .strip_prefix(&plugins_root)
        .map_err(|_| AdminSetupError::UploadOutsidePlugins {
            upload: options.upload_dir.clone(),
            plugins: plugins_dir.clone(),
        })?
        .to_path_buf();
    let definitions = super::admin_definitions::routes(registry.clone());
    let state = AdminState {
        registry,
        plugins_dir,
        upload_folder,
        upload_root,
    };
    let auth = Arc::new(BearerAuth {
        token: options.token.clone(),
        realm: "wasimancer-admin",
        hint: "The token is WASIMANCER_ADMIN_TOKEN (or --admin-token), printed once at start when generated.",
    });
    Ok(Router::new()
        .route("/upload-plugin", post(upload))
        .route("/update-plugin", put(update))
        .route("/remove-plugin/{name}", delete(remove))
        .route("/plugins", get(list))
        .route("/reload", post(reload))
        .with_state(state)
        .merge(definitions)
        .merge(more)
        .layer(DefaultBodyLimit::max(options.max_upload_bytes))
        .layer(axum::middleware::from_fn_with_state(auth, require_bearer)))
}

/// An error answer: a status and `{"error": "..."}`.
#[derive(Debug)]
pub(super) struct AdminError {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl AdminError {
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<ChangeError> for AdminError {
    fn from(error: ChangeError) -> Self {
        let status = match &error {
            ChangeError::UnknownPlugin { .. } | ChangeError::UnknownEntry { .. } => {
                StatusCode::NOT_FOUND
            }
            ChangeError::InvalidEntry(_) => StatusCode::BAD_REQUEST,
            ChangeError::Conflict(_)
            | ChangeError::CatalogOnDisk(_)
            | ChangeError::FileOnDisk { .. } => StatusCode::CONFLICT,
            ChangeError::Module(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ChangeError::Catalog(_) | ChangeError::Write { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ChangeError::Interrupted => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self {
            status,
            message: error.to_string(),
        }
    }
}

/// WASImancer's `?dir=`: where to put the module, here a folder inside the
/// upload folder.
#[derive(Debug, Deserialize)]
struct UploadQuery {
    dir: Option<String>,
}

/// The multipart fields of an upload or update.
struct UploadForm {
    /// The client's name for the file, and its content.
    module: Option<(Option<String>, Vec<u8>)>,
    /// The entry as received, and parsed.
    data: Value,
    spec: PluginSpec,
}

async fn read_form(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<UploadForm, AdminError> {
    let mut multipart = multipart.map_err(|rejection| AdminError {
        status: rejection.status(),
        message: format!(
            "send multipart/form-data with the fields `wasmFile` and `pluginData`: {}",
            rejection.body_text()
        ),
    })?;
    let read_error = |error: axum::extract::multipart::MultipartError| AdminError {
        status: error.status(),
        message: format!("cannot read the upload: {}", error.body_text()),
    };
    let mut module = None;
    let mut data = None;
    while let Some(field) = multipart.next_field().await.map_err(read_error)? {
        match field.name() {
            Some("wasmFile") => {
                let name = field.file_name().map(str::to_string);
                let bytes = field.bytes().await.map_err(read_error)?;
                module = Some((name, bytes.to_vec()));
            }
            Some("pluginData") => data = Some(field.text().await.map_err(read_error)?),
            _ => {}
        }
    }
    let data = data.ok_or_else(|| {
        AdminError::bad_request(
            "the field `pluginData` is missing: send the plugins.yml entry as JSON",
        )
    })?;
    let (data, spec) = plugin_data(&data)?;
    Ok(UploadForm { module, data, spec })
}

/// `pluginData`: the entry as received, and parsed.
fn plugin_data(data: &str) -> Result<(Value, PluginSpec), AdminError> {
    let value: Value = serde_json::from_str(data)
        .map_err(|e| AdminError::bad_request(format!("`pluginData` is not JSON: {e}")))?;
    let spec = PluginSpec::from_json(data).map_err(|e| {
        AdminError::bad_request(format!(
            "`pluginData` is not a valid plugins.yml entry: {e} (it needs name, path and functions)"
        ))
    })?;
    Ok((value, spec))
}

/// Where uploaded modules may go.
struct UploadFolder<'a> {
    /// The plugins folder as configured (its name may start `dir`).
    plugins_dir: &'a Path,
    /// The upload folder, relative to the plugins folder.
    relative: &'a Path,
}

impl UploadFolder<'_> {
    /// Check the names involved and decide where the module goes: the entry's
    /// path, or `dir` plus its file name, inside the upload folder.
    fn place(&self, form: &mut UploadForm, dir: Option<&str>) -> Result<(), AdminError> {
        if let Some((Some(name), _)) = &form.module {
            check_file_name(name)?;
        }
        let declared = form.spec.module().map_err(bad_path)?;
        let module = match dir {
            Some(dir) => declared.file_in(self.dir_in_plugins(dir)?.as_ref()),
            None => declared,
        };
        check_module_path(module.as_path())?;
        if !module.as_path().starts_with(self.relative) {
            return Err(AdminError::bad_request(format!(
                "path `{module}` is outside the upload folder `{}/`; put uploaded modules there",
                self.relative.display()
            )));
        }
        form.spec.path = module.to_string();
        Ok(())
    }

    /// `dir` as a folder of the plugins folder (`None`: the plugins folder
    /// itself). WASImancer's scripts name it from the working directory
    /// (`./plugins/bucket`), so a leading plugins folder name is dropped.
    fn dir_in_plugins(&self, dir: &str) -> Result<Option<RelativePath>, AdminError> {
        let dir =
            RelativePath::new(dir).map_err(|e| AdminError::bad_request(format!("`dir`: {e}")))?;
        match self.plugins_dir.file_name() {
            Some(plugins_name) if dir.as_path().starts_with(plugins_name) => {
                Ok(dir.strip_prefix(Path::new(plugins_name)))
            }
            _ => Ok(Some(dir)),
        }
    }
}

impl AdminState {
    fn upload_folder(&self) -> UploadFolder<'_> {
        UploadFolder {
            plugins_dir: &self.plugins_dir,
            relative: &self.upload_folder,
        }
    }

    /// [`AdminState::owns`] for the registry, which decides on a thread of its own.
    fn owns_file(&self) -> OwnsFile {
        let state = self.clone();
        Arc::new(move |module| state.owns(module))
    }

    /// Whether a module file is one this API put there (and may delete): in
    /// the upload folder, and still there with links followed.
    fn owns(&self, module: &RelativePath) -> bool {
        module
            .strip_prefix(&self.upload_folder)
            .is_some_and(|inside| inside.resolve(&self.upload_root).is_ok())
    }
}

fn bad_path(error: crate::catalog::PathError) -> AdminError {
    AdminError::bad_request(error.to_string())
}

/// The client's file name: a plain name ending in `.wasm`.
fn check_file_name(name: &str) -> Result<(), AdminError> {
    let plain = !name.contains(['/', '\\']) && name != ".." && !name.starts_with('.');
    if !plain || !name.ends_with(".wasm") {
        return Err(AdminError::bad_request(format!(
            "the uploaded file is named `{name}`; send a plain file name ending in .wasm"
        )));
    }
    Ok(())
}

/// Every part of the module path a plain name, the last one ending in `.wasm`.
fn check_module_path(path: &Path) -> Result<(), AdminError> {
    let plain = path.components().all(|c| match c {
        Component::Normal(part) => part.to_str().is_some_and(|p| {
            !p.starts_with('.')
                && p.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        }),
        _ => false,
    });
    if !plain || path.extension().is_none_or(|e| e != "wasm") {
        return Err(AdminError::bad_request(format!(
            "path `{}`: use letters, digits, `.`, `_` and `-` in folder and file names, and end it with .wasm",
            path.display()
        )));
    }
    Ok(())
}

/// The form of an upload or update, read and placed in the upload folder.
async fn receive(
    state: &AdminState,
    query: UploadQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<UploadForm, AdminError> {
    let mut form = read_form(multipart).await?;
    state
        .upload_folder()
        .place(&mut form, query.dir.as_deref())?;
    Ok(form)
}

async fn upload(
    State(state): State<AdminState>,
    Query(query): Query<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, AdminError> {
    let mut form = receive(&state, query, multipart).await?;
    let Some((_, bytes)) = form.module.take() else {
        return Err(AdminError::bad_request(
            "no file uploaded: send the module in the field `wasmFile`",
        ));
    };
    let edited = state
        .registry
        .add_plugin(form.spec.clone(), Some(bytes), "admin API")
        .await?;
    Ok(Json(uploaded(&state, &form, &edited)))
}

async fn update(
    State(state): State<AdminState>,
    Query(query): Query<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, AdminError> {
    let mut form = receive(&state, query, multipart).await?;
    // Without a file, the entry changes and the module on disk is reused.
    let bytes = form.module.take().map(|(_, bytes)| bytes);
    let edited = state
        .registry
        .replace_plugin(form.spec.clone(), bytes, "admin API", state.owns_file())
        .await?;
    Ok(Json(uploaded(&state, &form, &edited)))
}

/// WASImancer's success answer, plus the plugin as now served.
fn uploaded(state: &AdminState, form: &UploadForm, edited: &Edited) -> Value {
    let snapshot = state.registry.snapshot();
    json!({
        "message": "File uploaded successfully",
        "filePath": edited.module_path.display().to_string(),
        "metadata": form.data,
        "plugin": snapshot.plugin(&form.spec.name).map(plugin_json),
    })
}

async fn remove(
    State(state): State<AdminState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Json<Value>, AdminError> {
    let edited = state
        .registry
        .remove_plugin(&name, "admin API", state.owns_file())
        .await?;
    Ok(Json(json!({
        "message": "Plugin removed successfully",
        "plugin": name,
        "moduleDeleted": edited.module_deleted,
        "filePath": edited.module_path.display().to_string(),
    })))
}

async fn list(State(state): State<AdminState>) -> Json<Value> {
    let snapshot = state.registry.snapshot();
    Json(json!({
        "plugins": snapshot.plugins.iter().map(plugin_json).collect::<Vec<_>>(),
        "tools": snapshot.tools.len(),
    }))
}

async fn reload(State(state): State<AdminState>) -> Result<Json<Value>, AdminError> {
    let report = state
        .registry
        .reload_all("admin API")
        .await
        .map_err(|error| match error {
            ChangeError::Catalog(inner) => AdminError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: format!("plugins.yml was not applied: {inner}"),
            },
            other => other.into(),
        })?;
    Ok(Json(json!({
        "ok": !report.has_failures(),
        "summary": report.summary(),
        "changes": report.changes,
        "definitions": report.definitions,
    })))
}

/// One plugin as `GET /plugins` shows it. Config values are not shown: they
/// may be secrets.
pub fn plugin_json(entry: &PluginEntry) -> Value {
    let spec = &entry.spec;
    let serving = entry.serving.as_ref();
    json!({
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "path": spec.path,
        "line": entry.line,
        "state": entry.state(),
        "error": entry.error,
        "functions": spec.functions.iter().map(|f| json!({
            "tool": f.tool_name(),
            "title": f.title(),
            "function": f.function,
            "description": f.description,
            "arguments": f.arguments.iter().map(|a| json!({
                "name": a.name,
                "type": a.kind,
                "description": a.description,
                "required": a.required,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "limits": {
            "timeout_ms": spec.timeout_ms(),
            "memory_mb": spec.memory_mb(),
            "instances": serving.map(|s| s.instances()),
            "wasi": spec.wasi,
            "allowed_hosts": spec.allowed_hosts,
            "allowed_paths": spec.allowed_paths,
        },
        "config_keys": spec.config.keys().collect::<Vec<_>>(),
        "busy_instances": serving.map(|s| s.busy_instances()),
        // Replicas serving the same module show the same digest.
        "digest": serving.map(|s| format!("{:016x}", s.digest())),
        "loaded_at": serving.and_then(|s| s.loaded_at().duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64),
    })
}

/// The admin API's reading of an upload without a server, for the fuzz
/// targets (`crate::fuzzing`): the multipart body read (or only its
/// `pluginData`, when `form` is `Err`) and the module placed in the upload
/// folder `upload` of `plugins_dir`. The entry as placed, or the error text.
pub(crate) async fn receive_for_fuzzing(
    form: Result<Result<Multipart, MultipartRejection>, &str>,
    dir: Option<&str>,
    plugins_dir: &Path,
    upload: &Path,
) -> Result<PluginSpec, String> {
    let mut form = match form {
        Ok(multipart) => read_form(multipart).await,
        Err(data) => plugin_data(data).map(|(data, spec)| UploadForm {
            module: None,
            data,
            spec,
        }),
    }
    .map_err(|error| error.message)?;
    let folder = UploadFolder {
        plugins_dir,
        relative: upload,
    };
    folder
        .place(&mut form, dir)
        .map_err(|error| error.message)?;
    Ok(form.spec)
}
