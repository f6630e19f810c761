//! Export files in S3-compatible object storage, through the `object_store` crate.
//!
//! The export workers are plain threads, so the storage keeps a small tokio runtime of its own
//! and waits on it; downloads go through pre-signed URLs, never through this server.

use super::storage::{ExportStorage, StagedFile, check_name};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{
    Attribute, Attributes, MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
};
use std::future::Future;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

/// The longest validity S3 accepts for a pre-signed URL (7 days).
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);
/// S3's smallest part of a multipart upload (all parts but the last).
const MIN_PART: usize = 5 * 1024 * 1024;
/// Part size when none is configured.
const DEFAULT_PART: usize = 8 * 1024 * 1024;

/// Where and how to reach the bucket. Anything left `None` comes from the usual `AWS_*`
/// variables (`AWS_REGION`, `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, …) or object_store's defaults (region `us-east-1`,
/// instance or web-identity credentials).
#[derive(Clone, Default)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// Key prefix of the export files, e.g. `usagelogs/exports`.
    pub prefix: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`; path-style requests
    /// are used with it.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (loopback test servers).
    pub allow_http: bool,
    /// Bytes buffered per uploaded part (at least 5 MiB; 0 means 8 MiB).
    pub part_size: usize,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("allow_http", &self.allow_http)
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// The storage's own runtime, shut down without waiting when the last user lets go of it, so
/// dropping it from inside another runtime (an actix thread) is safe.
struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    fn new() -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("usagelogs-s3")
            .enable_all()
            .build()?;
        Ok(Self(Some(rt)))
    }

    /// Runs `fut` on this runtime and waits for it. Works from plain threads as well as from
    /// threads that are inside another runtime (the future never runs on the caller's thread).
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
        let rt = self.0.as_ref().ok_or_else(|| io::Error::other("the S3 runtime is shut down"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| io::Error::other("the S3 runtime stopped"))
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Export files in an S3 bucket (or an S3-compatible server).
#[derive(Clone)]
pub struct S3ExportStorage {
    store: Arc<AmazonS3>,
    rt: Arc<Rt>,
    bucket: String,
    prefix: Path,
    part_size: usize,
}

impl std::fmt::Debug for S3ExportStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3ExportStorage")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix.as_ref())
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3ExportStorage {
    /// A storage for `config`: the `AWS_*` variables first, then `config`'s settings over them.
    /// Nothing is sent to the server yet.
    pub fn new(config: &S3Config) -> io::Result<Self> {
        if config.bucket.trim().is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the S3 bucket name is empty"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(config.bucket.trim());
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
            builder = builder.with_endpoint(endpoint.trim()).with_virtual_hosted_style_request(false);
        }
        if let Some(region) = config.region.as_deref().filter(|r| !r.trim().is_empty()) {
            builder = builder.with_region(region.trim());
        }
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if config.allow_http {
            builder = builder.with_allow_http(true);
        }
        let store = builder.build().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let part_size = if config.part_size == 0 { DEFAULT_PART } else { config.part_size.max(MIN_PART) };
        Ok(Self {
            store: Arc::new(store),
            rt: Arc::new(Rt::new()?),
            bucket: config.bucket.trim().to_owned(),
            prefix: Path::from(config.prefix.as_deref().unwrap_or("")),
            part_size,
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key of file `name`.
    pub fn key(&self, name: &str) -> io::Result<Path> {
        check_name(name)?;
        Ok(self.prefix.clone().join(name))
    }

    fn staged(&self, name: &str, content_type: Option<&'static str>) -> io::Result<Box<dyn StagedFile>> {
        let path = self.key(name)?;
        let mut attributes = Attributes::new();
        if let Some(ct) = content_type {
            attributes.insert(Attribute::ContentType, ct.into());
        }
        Ok(Box::new(S3Staged {
            store: Arc::clone(&self.store),
            rt: Arc::clone(&self.rt),
            path,
            attributes,
            buf: Vec::new(),
            part_size: self.part_size,
            upload: None,
            done: false,
        }))
    }
}

impl ExportStorage for S3ExportStorage {
    fn create(&self, name: &str) -> io::Result<Box<dyn StagedFile>> {
        self.staged(name, None)
    }

    fn create_typed(&self, name: &str, content_type: &'static str) -> io::Result<Box<dyn StagedFile>> {
        self.staged(name, Some(content_type))
    }

    fn open(&self, _name: &str) -> io::Result<Option<std::fs::File>> {
        // Downloads go through the pre-signed URL.
        Ok(None)
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        let path = self.key(name)?;
        let store = Arc::clone(&self.store);
        match self.rt.run(async move { store.delete(&path).await })? {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other.map_err(io::Error::from),
        }
    }

    fn direct_url(&self, name: &str, ttl: Duration) -> Option<String> {
        let path = self.key(name).ok()?;
        let store = Arc::clone(&self.store);
        let ttl = ttl.clamp(Duration::from_secs(1), MAX_PRESIGN);
        match self.rt.run(async move { store.signed_url(Method::GET, &path, ttl).await }) {
            Ok(Ok(url)) => Some(url.to_string()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, bucket = %self.bucket, "cannot pre-sign an export download URL");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot pre-sign an export download URL");
                None
            }
        }
    }
}

/// An object being uploaded: small files in one `PUT` on commit, larger ones as a multipart
/// upload whose parts go out as they fill (one part buffered at a time). The object appears
/// only when the upload completes; dropping it uncommitted aborts the upload.
struct S3Staged {
    store: Arc<AmazonS3>,
    rt: Arc<Rt>,
    path: Path,
    attributes: Attributes,
    buf: Vec<u8>,
    part_size: usize,
    upload: Option<Box<dyn MultipartUpload>>,
    done: bool,
}

impl S3Staged {
    /// Sends the buffer as the next part, starting the multipart upload first if needed.
    fn send_part(&mut self) -> io::Result<()> {
        if self.upload.is_none() {
            let (store, path) = (Arc::clone(&self.store), self.path.clone());
            let opts = PutMultipartOptions { attributes: self.attributes.clone(), ..Default::default() };
            let upload = self.rt.run(async move { store.put_multipart_opts(&path, opts).await })??;
            self.upload = Some(upload);
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        let upload = self.upload.as_mut().ok_or_else(|| io::Error::other("no upload"))?;
        let part = upload.put_part(PutPayload::from(data));
        self.rt.run(part)??;
        Ok(())
    }

    fn abort(&mut self) -> io::Result<()> {
        if let Some(mut upload) = self.upload.take() {
            self.rt.run(async move { upload.abort().await })??;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.upload.is_none() {
            let (store, path) = (Arc::clone(&self.store), self.path.clone());
            let payload = PutPayload::from(std::mem::take(&mut self.buf));
            let opts = PutOptions { attributes: self.attributes.clone(), ..Default::default() };
            self.rt.run(async move { store.put_opts(&path, payload, opts).await })??;
            return Ok(());
        }
        if !self.buf.is_empty() {
            self.send_part()?;
        }
        let mut upload = self.upload.take().ok_or_else(|| io::Error::other("no upload"))?;
        let (result, mut upload) = self.rt.run(async move { (upload.complete().await, upload) })?;
        if let Err(e) = result {
            let _ = self.rt.run(async move { upload.abort().await });
            return Err(e.into());
        }
        Ok(())
    }
}

impl Write for S3Staged {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.done {
            return Err(io::Error::other("committed"));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.part_size {
            self.send_part()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.done {
            return Err(io::Error::other("committed"));
        }
        Ok(())
    }
}

impl StagedFile for S3Staged {
    fn commit(mut self: Box<Self>) -> io::Result<()> {
        if self.done {
            return Err(io::Error::other("committed twice"));
        }
        self.done = true;
        let result = self.finish();
        if result.is_err() {
            let _ = self.abort();
        }
        result
    }
}

impl Drop for S3Staged {
    fn drop(&mut self) {
        if let Err(e) = self.abort() {
            tracing::warn!(error = %e, key = %self.path, "cannot abort an unfinished export upload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(prefix: Option<&str>) -> S3ExportStorage {
        S3ExportStorage::new(&S3Config {
            bucket: "exports".into(),
            prefix: prefix.map(Into::into),
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            allow_http: true,
            part_size: 0,
        })
        .unwrap()
    }

    #[test]
    fn keys_join_the_prefix_and_refuse_bad_names() {
        assert_eq!(storage(None).key("abc").unwrap().as_ref(), "abc");
        assert_eq!(storage(Some("/a/b/")).key("abc").unwrap().as_ref(), "a/b/abc");
        assert!(storage(None).key("../x").is_err());
        assert!(storage(None).create("a/b").is_err());
        assert!(storage(None).open("abc").unwrap().is_none());
    }

    #[test]
    fn pre_signed_urls_are_path_style_and_expire() {
        let s = storage(Some("p"));
        let url = s.direct_url("abc", Duration::from_secs(600)).unwrap();
        assert!(url.starts_with("http://127.0.0.1:1/exports/p/abc?"), "{url}");
        assert!(url.contains("X-Amz-Expires=600"), "{url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let long = s.direct_url("abc", Duration::from_secs(30 * 86_400)).unwrap();
        assert!(long.contains("X-Amz-Expires=604800"), "{long}");
    }

    #[test]
    fn the_secret_is_not_printed() {
        let cfg = S3Config { secret_access_key: Some("hunter2".into()), ..Default::default() };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn dropping_the_storage_inside_a_runtime_is_safe() {
        let s = storage(None);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let url = s.direct_url("abc", Duration::from_secs(60));
            assert!(url.is_some());
            drop(s);
        });
    }
}
