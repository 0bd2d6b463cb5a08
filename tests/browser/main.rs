//! Real-browser tests: headless Chromium driven over WebDriver (chromedriver).

mod chat;
mod driver;
mod sign_in;
