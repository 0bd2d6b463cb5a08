//! The taskflow-bff binary: environment → settings → telemetry → server.

use taskflow_bff::{config::Settings, startup::Application, telemetry};

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let _ = dotenvy::dotenv();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Held to the end of main: dropping it flushes the last lines.
    let _logs = telemetry::init(settings.server.log_format, telemetry::DEFAULT_FILTER);
    // Each open stream holds two sockets; a default soft limit of 1024 would cap us at ~500.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let demo = settings.demo_mode();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("taskflow-bff cannot start: {e:#}");
            return std::process::ExitCode::from(1);
        }
    };
    let url = app.state().public_url.clone();
    if demo {
        tracing::info!("demo mode: open {url} and sign in as Alice");
        println!("taskflow-bff (demo mode) is running: open {url} and sign in as Alice");
    } else {
        tracing::info!("listening; public URL {url}");
    }
    match app.run_until_stopped().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
