//! WASImancer's resource and prompt endpoints, with its paths, JSON bodies
//! and answers: `POST /add-resource`, `PUT /update-resource/{name}`,
//! `DELETE /remove-resource/{name}`, and the same for prompts; plus our
//! `GET /resources` and `GET /prompts`. The admin token is checked by the
//! layer around every admin route before any body is read; every change is
//! checked in full before resources.yml or prompts.yml is written (see
//! `registry::definitions`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::admin::AdminError;
use crate::catalog::{PromptSpec, ResourceSpec};
use crate::registry::{Registry, ServedPrompt, ServedResource};

const ORIGIN: &str = "admin API";

/// The resource and prompt routes (the caller adds the token check).
pub fn routes(registry: Registry) -> Router {
    Router::new()
        .route("/add-resource", post(add_resource))
        .route("/update-resource/{name}", put(update_resource))
        .route("/remove-resource/{name}", delete(remove_resource))
        .route("/resources", get(list_resources))
        .route("/add-prompt", post(add_prompt))
        .route("/update-prompt/{name}", put(update_prompt))
        .route("/remove-prompt/{name}", delete(remove_prompt))
        .route("/prompts", get(list_prompts))
        .with_state(registry)
}

/// The JSON body, or why it could not be read.
fn body(body: Result<Json<Value>, JsonRejection>, what: &str) -> Result<Value, AdminError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| AdminError {
            status: rejection.status(),
            message: format!(
                "send the {what} as JSON with `Content-Type: application/json`: {}",
                rejection.body_text()
            ),
        })
}

fn resource_spec(value: &Value) -> Result<ResourceSpec, AdminError> {
    ResourceSpec::from_json(value.clone()).map_err(|e| {
        AdminError::bad_request(format!(
            "not a valid resources.yml entry: {e} (it needs name, uri, and contents or plugin and function)"
        ))
    })
}

fn prompt_spec(value: &Value) -> Result<PromptSpec, AdminError> {
    PromptSpec::from_json(value.clone()).map_err(|e| {
        AdminError::bad_request(format!(
            "not a valid prompts.yml entry: {e} (it needs name and messages)"
        ))
    })
}

async fn add_resource(
    State(registry): State<Registry>,
    request: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let value = body(request, "resource")?;
    let spec = resource_spec(&value)?;
    let name = spec.name.clone();
    let edit = registry.add_resource(spec, ORIGIN).await?;
    Ok(Json(json!({
        "message": format!("Resource {name} added successfully"),
        "type": edit.new_kind,
        "resource": value,
    })))
}

async fn update_resource(
    State(registry): State<Registry>,
    Path(name): Path<String>,
    request: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let value = body(request, "resource")?;
    let spec = resource_spec(&value)?;
    let edit = registry.replace_resource(&name, spec, ORIGIN).await?;
    Ok(Json(json!({
        "message": format!("Resource {name} updated successfully"),
        "oldType": edit.old_kind,
        "newType": edit.new_kind,
        "resource": value,
    })))
}

async fn remove_resource(
    State(registry): State<Registry>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let edit = registry.remove_resource(&name, ORIGIN).await?;
    Ok(Json(json!({
        "message": format!("Resource {name} removed successfully"),
        "type": edit.old_kind,
    })))
}

async fn add_prompt(
    State(registry): State<Registry>,
    request: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let value = body(request, "prompt")?;
    let spec = prompt_spec(&value)?;
    let name = spec.name.clone();
    registry.add_prompt(spec, ORIGIN).await?;
    Ok(Json(json!({
        "message": format!("Prompt {name} added successfully"),
        "prompt": value,
    })))
}

async fn update_prompt(
    State(registry): State<Registry>,
    Path(name): Path<String>,
    request: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let value = body(request, "prompt")?;
    let spec = prompt_spec(&value)?;
    registry.replace_prompt(&name, spec, ORIGIN).await?;
    Ok(Json(json!({
        "message": format!("Prompt {name} updated successfully"),
        "prompt": value,
    })))
}

async fn remove_prompt(
    State(registry): State<Registry>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    registry.remove_prompt(&name, ORIGIN).await?;
    Ok(Json(json!({
        "message": format!("Prompt {name} removed successfully"),
    })))
}

async fn list_resources(State(registry): State<Registry>) -> Json<Value> {
    let set = registry.resources();
    let file = set.file.as_ref();
    Json(json!({
        "file": file.map(|f| f.path.display().to_string()),
        "exists": file.is_some_and(|f| f.exists),
        "resources": set.resources.iter().map(|r| resource_json(r)).collect::<Vec<_>>(),
    }))
}

async fn list_prompts(State(registry): State<Registry>) -> Json<Value> {
    let set = registry.prompts();
    let file = set.file.as_ref();
    Json(json!({
        "file": file.map(|f| f.path.display().to_string()),
        "exists": file.is_some_and(|f| f.exists),
        "prompts": set.prompts.iter().map(|p| prompt_json(p)).collect::<Vec<_>>(),
    }))
}

/// One resource as `GET /resources` shows it: its entry, its kind and line.
fn resource_json(resource: &ServedResource) -> Value {
    json!({
        "type": resource.kind,
        "line": resource.line,
        "computed": resource.is_computed(),
        "entry": resource.spec,
    })
}

/// One prompt as `GET /prompts` shows it: its entry and line.
fn prompt_json(prompt: &ServedPrompt) -> Value {
    json!({
        "line": prompt.line,
        "entry": prompt.spec,
    })
}
