//! `chorus route "PROMPT" [--category C]`: the content router's dry run (`POST /api/v1/route`).
//! Which category and model a prompt sent with no `--model` would get, the stage that decided
//! and the semantic scores behind it, one `key  value` line each (`--json`: the server's JSON).
//! Nothing is generated. Like `chorus ask`, it runs the server in this process when none answers.

use anyhow::Result;
use chorus_proto::route::{RouteRequest, RouteResponse};

use crate::args::RouteArgs;
use crate::target;

/// Returns `Ok(false)` for a usage error (no prompt and no category).
pub(crate) async fn run(args: RouteArgs) -> Result<bool> {
    let prompt = match (crate::ask::prompt(args.prompt)?, &args.category) {
        (Some(prompt), _) => prompt,
        // A forced category needs no text: the answer shows which model serves it.
        (None, Some(_)) => String::new(),
        (None, None) => {
            eprintln!("chorus: no prompt: pass it as an argument (chorus route \"…\") or pipe it on stdin");
            return Ok(false);
        }
    };
    let target = target::connect(&args.connect, &args.model).await?;
    let request = RouteRequest { prompt: Some(prompt), messages: None, category: args.category };
    let result = target.client.route(&request).await;
    target.close().await;
    let response = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&response)?);
    } else {
        print!("{}", render(&response));
    }
    Ok(true)
}

/// The decision as `key  value` lines, the values aligned; absent values have no line.
fn render(r: &RouteResponse) -> String {
    let mut lines: Vec<(&str, String)> = vec![("category", r.category.clone()), ("stage", r.stage.clone())];
    match (r.score, r.margin) {
        (Some(score), Some(margin)) => lines.push(("score", format!("{score:.2} (margin {margin:.2})"))),
        (Some(score), None) => lines.push(("score", format!("{score:.2}"))),
        (None, Some(margin)) => lines.push(("margin", format!("{margin:.2}"))),
        (None, None) => {}
    }
    lines.push(("model", r.model.clone().unwrap_or_else(|| "none (no model serves this category)".to_owned())));
    if !r.scores.is_empty() {
        let mut scores: Vec<(&String, &f32)> = r.scores.iter().collect();
        scores.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let scores: Vec<String> = scores.iter().map(|(name, score)| format!("{name} {score:.2}")).collect();
        lines.push(("scores", scores.join(", ")));
    }
    lines.push(("took", format!("{:.1} ms", r.elapsed_ms)));
    lines.iter().map(|(key, value)| format!("{key:<9} {value}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> RouteResponse {
        RouteResponse {
            category: "code".into(),
            stage: "semantic".into(),
            score: Some(0.8312),
            margin: Some(0.12),
            model: Some("qwen-coder".into()),
            scores: [("general", 0.41), ("code", 0.8312), ("math", 0.30), ("translation", 0.22), ("image", 0.12)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            elapsed_ms: 3.21,
            header: "category=code; stage=semantic; score=0.83; model=qwen-coder".into(),
        }
    }

    #[test]
    fn a_semantic_decision_shows_every_line_scores_best_first() {
        assert_eq!(
            render(&response()),
            "category  code\n\
             stage     semantic\n\
             score     0.83 (margin 0.12)\n\
             model     qwen-coder\n\
             scores    code 0.83, general 0.41, math 0.30, translation 0.22, image 0.12\n\
             took      3.2 ms\n"
        );
    }

    #[test]
    fn absent_values_have_no_line_and_a_missing_model_says_so() {
        let forced = RouteResponse {
            stage: "forced".into(),
            category: "image".into(),
            score: None,
            margin: None,
            model: None,
            scores: Default::default(),
            ..response()
        };
        assert_eq!(
            render(&forced),
            "category  image\nstage     forced\nmodel     none (no model serves this category)\ntook      3.2 ms\n"
        );
        let undecided = RouteResponse { stage: "default".into(), score: None, margin: Some(0.01), ..response() };
        assert!(render(&undecided).contains("\nmargin    0.01\n"), "{}", render(&undecided));
    }
}
