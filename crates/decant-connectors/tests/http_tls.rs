//! HTTP JSON API sources over https: a private CA (or a self-signed certificate) named in
//! `ca_file` is trusted; without it, for a certificate of another name, or against a plain http
//! server, the read fails at once with a message that says what is wrong with TLS. The API is a
//! small axum server inside the test, behind rustls, on 127.0.0.1 with a CA and a server
//! certificate made by rcgen: no outside network.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::{DataType, Schema, SchemaRef};
use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use decant_connectors::http::HttpSource;
use decant_connectors::{ReadColumn, ReadRequest, Source};
use decant_core::http::{HttpOptions, HttpTable, Pagination};
use decant_core::plan::Policies;
use decant_core::{ConnectionUrl, Table};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

/// What the test server presents, and the PEM a client must trust for it.
struct Pki {
    trust_pem: String,
    server: rustls::ServerConfig,
}

/// A server config for `cert`, with the same provider as the client's: the only one in the
/// build.
fn server_config(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: &KeyPair,
) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    server
}

/// A CA and a certificate it issued for `names`; the CA is to be trusted.
fn private_ca(names: &[&str]) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Decant test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Pki {
        trust_pem: ca.pem(),
        server: server_config(leaf.der().clone(), &key),
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, to be trusted itself.
fn self_signed() -> Pki {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    Pki {
        trust_pem: cert.pem(),
        server: server_config(cert.der().clone(), &signing_key),
    }
}

/// TLS in front of a TCP listener, for `axum::serve`: a connection whose handshake fails (a
/// client that does not trust the certificate) is dropped and the next one accepted.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.tls.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn user(i: u64) -> Value {
    json!({"id": i, "name": format!("user {i}")})
}

/// Pages of users 1..=23, `?page=N&per_page=S`, with the count in `meta.total`.
async fn users(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let param = |k: &str, d: u64| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (page, per) = (param("page", 1), param("per_page", 10));
    let items: Vec<Value> = (1..=23u64)
        .skip(((page - 1) * per) as usize)
        .take(per as usize)
        .map(user)
        .collect();
    Json(json!({"data": {"items": items}, "meta": {"total": 23}}))
}

/// Serves the users over https; returns the PEM to trust and the base URL.
async fn serve_tls(pki: Pki) -> (String, String) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        tls: TlsAcceptor::from(Arc::new(pki.server)),
    };
    let app = Router::new().route("/api/users", get(users));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        pki.trust_pem,
        format!("https://127.0.0.1:{}/api", addr.port()),
    )
}

fn options(ca_file: Option<String>) -> HttpOptions {
    HttpOptions {
        tables: vec![HttpTable {
            name: "users".into(),
            path: "/users".into(),
            records: "data.items".into(),
            key: Some("id".into()),
            pagination: Pagination::Page {
                param: "page".into(),
                size_param: "per_page".into(),
                size: 5,
                first: 1,
                total_path: Some("meta.total".into()),
            },
            params: Default::default(),
            columns: Default::default(),
            incremental: None,
        }],
        // A certificate problem must fail at once, not after retries.
        retries: 3,
        backoff: "2s".into(),
        ca_file,
        ..Default::default()
    }
}

/// Every chunk of `table`, read; the ids in order.
async fn read_all(source: &HttpSource, table: &Table) -> Vec<i64> {
    let columns: Vec<ReadColumn> = table
        .columns
        .iter()
        .map(|c| ReadColumn {
            name: c.name.clone(),
            native_type: c.native_type.clone(),
            logical: c.logical.clone().unwrap(),
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| c.logical.arrow_field(&c.name, true, &c.native_type))
            .collect::<Vec<_>>(),
    ));
    let chunks = source.plan_chunks(table, 10).await.unwrap();
    assert_eq!(chunks.len(), 3, "23 records, 10 a chunk: {chunks:?}");
    let mut ids = Vec::new();
    for chunk in chunks {
        let request = ReadRequest {
            table: table.name.clone(),
            columns: columns.clone(),
            chunk,
            batch_rows: 100,
            schema: schema.clone(),
            policies: Policies::default(),
            rejects: Default::default(),
            filter: None,
        };
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(4);
        let collect = async {
            let mut out = Vec::new();
            while let Some(b) = rx.recv().await {
                out.push(b);
            }
            out
        };
        let (rows, batches) = tokio::join!(source.read_chunk(&request, tx), collect);
        let rows = rows.unwrap();
        assert!(request.rejects.is_empty());
        let mut n = 0;
        for b in batches {
            let i = b.schema().index_of("id").unwrap();
            let id = arrow_cast::cast(b.column(i), &DataType::Int64).unwrap();
            ids.extend(id.as_primitive::<Int64Type>().values().iter().copied());
            n += b.num_rows() as u64;
        }
        assert_eq!(rows, n);
    }
    ids
}

/// The source of `base` with `pem` in its `ca_file`.
fn open_trusting(pem: &str, base: &str) -> HttpSource {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, pem).unwrap();
    let o = options(Some(ca_file.to_string_lossy().into_owned()));
    // The file is read at open: it may go afterwards.
    HttpSource::open(&ConnectionUrl::parse(base).unwrap(), Some(&o)).unwrap()
}

/// Opens the source with `pem` in `ca_file` and reads every record.
async fn read_trusting(pem: String, base: &str) -> Vec<i64> {
    let source = open_trusting(&pem, base);
    let catalog = source.introspect(&[]).await.unwrap();
    let table = &catalog.tables[0];
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name"]);
    read_all(&source, table).await
}

#[tokio::test]
async fn a_private_ca_in_ca_file_is_trusted_for_https() {
    let (pem, base) = serve_tls(private_ca(&["localhost", "127.0.0.1"])).await;
    let all: Vec<i64> = (1..=23).collect();
    assert_eq!(read_trusting(pem.clone(), &base).await, all);
    // By name too: the certificate's DNS name, not only its IP address.
    let by_name = base.replace("127.0.0.1", "localhost");
    assert_eq!(read_trusting(pem, &by_name).await, all);
}

#[tokio::test]
async fn a_self_signed_certificate_in_ca_file_is_trusted() {
    let (pem, base) = serve_tls(self_signed()).await;
    assert_eq!(
        read_trusting(pem, &base).await,
        (1..=23).collect::<Vec<i64>>()
    );
}

#[tokio::test]
async fn without_ca_file_the_read_fails_on_the_certificate() {
    let (_pem, base) = serve_tls(private_ca(&["localhost", "127.0.0.1"])).await;
    let o = options(None);
    let source = HttpSource::open(&ConnectionUrl::parse(&base).unwrap(), Some(&o)).unwrap();
    let started = std::time::Instant::now();
    let err = source.introspect(&[]).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the TLS certificate of 127.0.0.1:")
            && text.contains("does not verify")
            && text.contains("UnknownIssuer")
            && text.contains("source.http.ca_file"),
        "{text}"
    );
    assert!(
        !err.is_retriable(),
        "no retry changes a certificate: {text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "failed at once, without the retries' backoff: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_does_not_verify() {
    let (pem, base) = serve_tls(private_ca(&["localhost"])).await;
    let err = open_trusting(&pem, &base)
        .introspect(&[])
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the TLS certificate of 127.0.0.1:")
            && text.contains("does not verify")
            && text.contains("the certificate is for another name"),
        "{text}"
    );
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn https_to_a_plain_http_server_says_the_handshake_failed() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let app = Router::new().route("/api/users", get(users));
    tokio::spawn(async move { axum::serve(tcp, app).await.unwrap() });
    let base = ConnectionUrl::parse(&format!("https://127.0.0.1:{port}/api")).unwrap();
    let source = HttpSource::open(&base, Some(&options(None))).unwrap();
    let err = source.introspect(&[]).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("TLS handshake with 127.0.0.1:{port} failed"))
            && text.contains("plain http://"),
        "{text}"
    );
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn a_ca_file_that_is_missing_or_holds_no_certificate_fails_at_open() {
    let base = ConnectionUrl::parse("https://127.0.0.1:9/api").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem").to_string_lossy().into_owned();
    let err = HttpSource::open(&base, Some(&options(Some(missing.clone()))))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("source.http.ca_file `{missing}`: cannot read it")),
        "{err}"
    );
    // A key is PEM but no certificate.
    let key = dir.path().join("key.pem");
    std::fs::write(&key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let key = key.to_string_lossy().into_owned();
    let err = HttpSource::open(&base, Some(&options(Some(key.clone()))))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&key) && err.contains("no certificate in it"),
        "{err}"
    );
}
