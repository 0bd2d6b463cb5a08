//! Real-browser tests: headless Chromium driven over WebDriver (chromedriver).

// Shared with the API tests and the bench; this binary uses its sign-in and free port.
#[allow(dead_code)]
#[path = "../common/binary.rs"]
mod binary;
mod chat;
mod driver;
mod pages;
mod sign_in;
mod tasks;
