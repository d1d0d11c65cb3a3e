//! `decant inspect URL`: the catalog of a database, as text or JSON.

use std::process::ExitCode;

use anyhow::Context;
use decant_connectors::connect_source;
use decant_core::ConnectionUrl;

pub async fn inspect(url: &str, json: bool, schemas: &[String]) -> anyhow::Result<ExitCode> {
    let url = ConnectionUrl::parse(&decant_core::plan::expand_env(url)?)?;
    let source = connect_source(&url)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let catalog = source.introspect(schemas).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&catalog)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} — {} tables, {} views",
        catalog.server_version,
        catalog.tables.len(),
        catalog.views.len()
    );
    for t in &catalog.tables {
        outln!(
            "\n{}  (~{} rows, {})",
            t.name,
            t.row_estimate,
            crate::render::bytes(t.size_bytes)
        );
        for c in &t.columns {
            let mut flags = Vec::new();
            if !c.nullable {
                flags.push("not null".to_string());
            }
            if t.primary_key.contains(&c.name) {
                flags.push("pk".into());
            }
            if c.auto_increment {
                flags.push("auto".into());
            }
            if c.generated {
                flags.push("generated".into());
            }
            if let Some(d) = &c.default {
                flags.push(format!("default {d}"));
            }
            let logical = c
                .logical
                .as_ref()
                .map_or("UNKNOWN: needs a type override".to_string(), |l| {
                    l.to_string()
                });
            outln!(
                "  {:<28} {:<32} {:<24} {}",
                c.name,
                c.native_type,
                logical,
                flags.join(", ")
            );
        }
        for u in &t.unique_keys {
            outln!("  unique {} ({})", u.name, u.columns.join(", "));
        }
        for i in &t.indexes {
            let extra = i
                .unsupported
                .as_deref()
                .map(|u| format!(" — not carried: {u}"))
                .unwrap_or_default();
            outln!(
                "  {}index {} ({}){extra}",
                if i.unique { "unique " } else { "" },
                i.name,
                i.columns.join(", ")
            );
        }
        for fk in &t.foreign_keys {
            outln!(
                "  fk {} ({}) → {} ({})",
                fk.name,
                fk.columns.join(", "),
                fk.ref_table,
                fk.ref_columns.join(", ")
            );
        }
        for ck in &t.checks {
            outln!("  check {}: {}", ck.name, ck.expression);
        }
    }
    for v in &catalog.views {
        outln!("\nview {} (listed, not migrated)", v.name);
    }
    Ok(ExitCode::SUCCESS)
}
