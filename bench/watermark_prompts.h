// Chat prompts shared by the watermark benches that generate with the real model
// (watermark_model_bench, watermark_power_bench): varied, everyday requests. Constant data.
#pragma once

namespace tracemark::bench {

inline constexpr const char* kWatermarkPrompts[] = {
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how photosynthesis works to a ten-year-old.",
    "Give me five tips for learning a new language as an adult.",
    "Describe your ideal weekend in the mountains.",
    "What are the main causes of inflation? Explain in plain words.",
    "Write a friendly email inviting colleagues to a team lunch on Friday.",
    "Summarize the plot of a mystery novel you would like to write.",
    "How do I make a good cup of coffee at home?",
    "Write a poem about the sea at night.",
    "What should a beginner know before adopting a dog?",
    "Explain the difference between weather and climate.",
    "Plan a three-day trip to a city you find interesting.",
    "Why is the sky blue? Give a simple explanation.",
    "Write a product description for a reusable water bottle.",
    "What are the pros and cons of working from home?",
    "Tell me about the history of the bicycle.",
    "How can I improve my sleep? List practical steps.",
    "Write a letter to your future self ten years from now.",
    "Explain what a computer program is to someone who has never used one.",
    "Describe a busy market in a small town on a Saturday morning.",
    "What makes a good team leader?",
    "Write a short speech for a friend's wedding.",
    "How do vaccines train the immune system?",
    "Give advice to a student starting university.",
    "Write a fairy tale about a fox and a clever crow.",
    "What are some healthy breakfast ideas?",
    "Explain how a bill becomes a law, step by step.",
    "Describe the life cycle of a butterfly.",
    "Write a review of an imaginary restaurant.",
    "How do I start running if I have never exercised?",
    "What is the role of bees in agriculture?",
    "Write a dialogue between a robot and a child about friendship.",
    "Explain compound interest with an example.",
    "Describe a thunderstorm from the point of view of a cat.",
    "What are good ways to save money on groceries?",
    "Write the opening paragraph of a science fiction novel.",
};

}  // namespace tracemark::bench
