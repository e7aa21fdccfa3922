#include "core/list_members.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace ia {

std::vector<std::string>
parse_list_members(std::string_view body)
{
	size_t k = 0;
	while (k < body.size() && (body[k] == ' ' || body[k] == '\t' || body[k] == '\r' || body[k] == '\n'))
		++k;
	if (k < body.size()) {
		// A userId may be any printable ASCII, so only whole documents are refused: a JSON object
		// (Iterable's error envelope, answered with 200 by a proxy or a changed API) or an HTML page.
		if (body[k] == '{') {
			nlohmann::json doc = nlohmann::json::parse(body.begin() + static_cast<std::ptrdiff_t>(k), body.end(), nullptr, false);
			if (!doc.is_discarded() && doc.is_object())
				throw ResponseFormatError("a JSON object, not the one identifier per line that getUsers answers");
		}
		std::string head(body.substr(k, 15));
		std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
		if (head.rfind("<!doctype", 0) == 0 || head.rfind("<html", 0) == 0)
			throw ResponseFormatError("an HTML page, not the one identifier per line that getUsers answers");
	}
	if (body.find('\0') != std::string_view::npos)
		throw ResponseFormatError("a NUL byte in what should be one identifier per line");
	std::vector<std::string> members;
	size_t start = 0;
	while (start < body.size()) {
		size_t end = body.find('\n', start);
		if (end == std::string_view::npos)
			end = body.size();
		size_t stop = end;
		if (stop > start && body[stop - 1] == '\r')
			--stop;
		if (stop > start)
			members.emplace_back(body.substr(start, stop - start));
		start = end + 1;
	}
	return members;
}

void
ListReadWindow::clear() noexcept
{
	std::fill(std::begin(starts), std::end(starts), 0.0);
	refused_until = 0;
}

double
ListReadWindow::try_take(double now) noexcept
{
	if (now < refused_until)
		return refused_until - now;
	// The oldest remembered start: once it is a window old, a request may go.
	int oldest = 0;
	for (int i = 1; i < kListReadsPerWindow; i++)
		if (starts[i] < starts[oldest])
			oldest = i;
	if (starts[oldest] > 0 && now < starts[oldest] + kListReadWindowSeconds)
		return starts[oldest] + kListReadWindowSeconds - now;
	starts[oldest] = now;
	return 0;
}

void
ListReadWindow::refused(double now) noexcept
{
	refused_until = std::max(refused_until, now + kListReadWindowSeconds);
}

}  // namespace ia
