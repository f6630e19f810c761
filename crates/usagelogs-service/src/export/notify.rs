//! Telling requesters an export ended: Quay's callback POST and an e-mail over SMTP.

use super::callback::CallbackPolicy;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{Message, SmtpTransport, Transport};
use serde::Serialize;
use std::time::Duration;

/// Quay's callback payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackPayload {
    pub export_id: String,
    /// `MM/DD/YYYY`, the first day.
    pub start_time: String,
    /// `MM/DD/YYYY`, the day after the last (the window's exclusive end, as Quay).
    pub end_time: String,
    pub namespace: String,
    pub repository: Option<String>,
    /// The download link, on success only.
    pub exported_data_url: Option<String>,
    /// `success`, `failed`, `timedout` or `invalidrequest`.
    pub status: String,
}

/// Settings of notifications.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Time limit of one callback request.
    pub callback_timeout: Duration,
    /// Callback attempts in all (first try included).
    pub callback_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub callback_backoff: Duration,
    /// `smtp://host:port` (or `smtps://…`); no e-mail without it.
    pub smtp_url: Option<String>,
    /// Sender address.
    pub mail_from: String,
    /// Short name of the registry in subjects.
    pub registry_title: String,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            callback_timeout: Duration::from_secs(10),
            callback_attempts: 5,
            callback_backoff: Duration::from_secs(2),
            smtp_url: None,
            mail_from: "usagelogs@localhost".into(),
            registry_title: "usagelogs".into(),
        }
    }
}

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("callback URL refused at send time: {0}")]
    Refused(String),
    #[error("callback not delivered after {attempts} attempts: {last}")]
    Callback { attempts: u32, last: String },
    #[error("no SMTP server configured (--smtp-url)")]
    NoSmtp,
    #[error("e-mail not sent: {0}")]
    Mail(String),
}

/// Sends callbacks and e-mail.
#[derive(Debug, Clone)]
pub struct Notifier {
    config: NotifyConfig,
    policy: CallbackPolicy,
}

impl Notifier {
    /// A notifier with these settings and callback policy.
    pub fn new(config: NotifyConfig, policy: CallbackPolicy) -> Self {
        Self { config, policy }
    }

    /// The blocking HTTP client of callbacks: a timeout, no redirects. Made per delivery, on the
    /// worker's thread, because a blocking client owns a runtime that must not be dropped on an
    /// async thread.
    fn client(config: &NotifyConfig) -> reqwest::Result<reqwest::blocking::Client> {
        reqwest::blocking::Client::builder()
            .timeout(config.callback_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("usagelogs/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The settings.
    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// POSTs `payload` to `url`, checking the URL again first; retries with backoff until a 2xx.
    pub fn callback(&self, url: &str, payload: &CallbackPayload) -> Result<(), NotifyError> {
        let url = self.policy.check(url).map_err(NotifyError::Refused)?;
        let http = Self::client(&self.config)
            .map_err(|e| NotifyError::Callback { attempts: 0, last: format!("no HTTP client: {e}") })?;
        let mut wait = self.config.callback_backoff;
        let mut last = String::new();
        let attempts = self.config.callback_attempts.max(1);
        for attempt in 1..=attempts {
            match http.post(url.clone()).json(payload).send() {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => last = format!("status {}", resp.status()),
                Err(e) => last = e.to_string(),
            }
            tracing::warn!(export_id = %payload.export_id, attempt, error = %last, "export callback failed");
            if attempt < attempts {
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
        }
        Err(NotifyError::Callback { attempts, last })
    }

    /// The e-mail for an ended export: subject and plain-text body.
    pub fn mail_text(&self, payload: &CallbackPayload, ttl: Duration) -> (String, String) {
        let subject = format!("[{}] Export Action Logs Complete", self.config.registry_title);
        let outcome = match (payload.status.as_str(), &payload.exported_data_url) {
            ("success", Some(url)) => format!(
                "The exported logs information can be found at {url} and will remain accessible for {} seconds \
                 before being deleted.",
                ttl.as_secs()
            ),
            ("timedout", _) => "The export has timed out. Please contact support if this problem persists.".into(),
            ("invalidrequest", _) => {
                "The export failed due to an invalid request. Please contact support if this problem persists.".into()
            }
            _ => {
                "The export has failed after all its attempts. Please contact support if this problem persists.".into()
            }
        };
        let scope = match &payload.repository {
            Some(r) => format!("{}/{r}", payload.namespace),
            None => payload.namespace.clone(),
        };
        let body = format!(
            "Usage Logs Export has completed\n\nExport ID: {}\nLogs of: {scope}\nFrom {} up to {} (UTC)\n\n{outcome}\n\n\
             If you did not initiate this operation, please delete this e-mail.\n",
            payload.export_id, payload.start_time, payload.end_time
        );
        (subject, body)
    }

    /// Sends the e-mail for an ended export to `to`.
    pub fn mail(&self, to: &str, payload: &CallbackPayload, ttl: Duration) -> Result<(), NotifyError> {
        let smtp = self.config.smtp_url.as_deref().ok_or(NotifyError::NoSmtp)?;
        let (subject, body) = self.mail_text(payload, ttl);
        let from: Mailbox = self.config.mail_from.parse().map_err(|e| NotifyError::Mail(format!("sender: {e}")))?;
        let to: Mailbox = to.parse().map_err(|e| NotifyError::Mail(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| NotifyError::Mail(e.to_string()))?;
        let transport = SmtpTransport::from_url(smtp)
            .map_err(|e| NotifyError::Mail(format!("bad --smtp-url: {e}")))?
            .timeout(Some(self.config.callback_timeout))
            .build();
        transport.send(&message).map(|_| ()).map_err(|e| NotifyError::Mail(e.to_string()))
    }
}

/// Whether `email` looks like one address: `local@domain`, as the mail library parses it.
pub fn is_valid_email(email: &str) -> bool {
    email.len() <= 254 && email.parse::<lettre::Address>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_checks() {
        assert!(is_valid_email("alice@example.com"));
        assert!(!is_valid_email("alice"));
        assert!(!is_valid_email("alice@"));
        assert!(!is_valid_email("a b@example.com"));
    }

    #[test]
    fn mail_text_says_what_quays_does() {
        let n = Notifier::new(NotifyConfig::default(), CallbackPolicy::default());
        let payload = CallbackPayload {
            export_id: "e1".into(),
            start_time: "03/01/2024".into(),
            end_time: "03/06/2024".into(),
            namespace: "acme".into(),
            repository: None,
            exported_data_url: Some("http://x/exportedlogs/f".into()),
            status: "success".into(),
        };
        let (subject, body) = n.mail_text(&payload, Duration::from_secs(3600));
        assert!(subject.contains("Export Action Logs Complete"));
        assert!(body.contains("Usage Logs Export has completed"));
        assert!(body.contains("exported logs information can be found at http://x/exportedlogs/f"));
        assert!(body.contains("3600 seconds"));
    }
}
